"""Many hosts behind one compute API (docs/architecture.md#cluster): chute-compute-api places
servers and owns the compute database; each host runs chute-compute as an agent."""
