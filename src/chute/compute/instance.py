"""What the compute layers pass around: one instance (a server) and its state vocabulary.

States follow Nova (docs/architecture.md#nova-states): the API status is derived from vm_state, so
there is one source of truth and no way for `status` and `vm_state` to disagree.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

BUILDING, ACTIVE, STOPPED, ERROR = "building", "active", "stopped", "error"
# task states (nova/compute/task_states.py): what is being done to the instance right now.
SCHEDULING, SPAWNING = "scheduling", "spawning"
POWERING_OFF, POWERING_ON = "powering-off", "powering-on"
REBOOTING, REBOOTING_HARD = "rebooting", "rebooting_hard"
# power states (nova/compute/power_state.py): what the hypervisor says of the guest.
NOSTATE, RUNNING, PAUSED, SHUTDOWN, CRASHED, SUSPENDED = 0, 1, 3, 4, 6, 7

STATUS_BY_VM_STATE = {BUILDING: "BUILD", ACTIVE: "ACTIVE", STOPPED: "SHUTOFF", ERROR: "ERROR"}
# An active instance being rebooted shows it (nova/api/openstack/common.py _STATE_MAP).
STATUS_BY_TASK_STATE = {REBOOTING: "REBOOT", REBOOTING_HARD: "HARD_REBOOT"}


def utcnow() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


@dataclass
class Fault:
    code: int
    message: str
    created: datetime


@dataclass
class Transfer:
    """How the image arrived on this host for this instance's build: the one record from the
    fetch (chute.compute.fetch builds it) to the server document. `primitive` is the copy
    primitive for `file`, `extents` or None (the whole stream) for `http`."""

    method: str  # file | http | cache
    primitive: str | None
    nbytes: int
    seconds: float
    source: str | None = None  # the path copied or the server downloaded from; not stored

    def as_dict(self) -> dict[str, Any]:
        return {"method": self.method, "primitive": self.primitive, "bytes": self.nbytes,
                "seconds": round(self.seconds, 3)}


@dataclass(frozen=True)
class Port:
    """A server's NIC (compute/network.py): its network's name, fixed address and MAC, and
    the Linux bridge its tap joins (None: a user-mode network of its own)."""

    network: str
    address: str
    mac: str
    bridge: str | None = None


@dataclass
class Instance:
    id: str
    name: str
    image_id: str
    flavor_id: str
    vm_state: str = BUILDING
    task_state: str | None = SCHEDULING
    power_state: int = NOSTATE
    created: datetime = field(default_factory=utcnow)
    updated: datetime = field(default_factory=utcnow)
    launched_at: datetime | None = None
    fault: Fault | None = None
    transfer: Transfer | None = None
    build_attempts: int = 0
    # What the boot request asked for (compute/server_fields.py checks it).
    key_name: str | None = None
    key_data: str | None = None  # the public key as it was at boot (the keypair may go)
    user_data: str | None = None  # base64, as sent
    metadata: dict[str, str] = field(default_factory=dict)
    tags: list[str] = field(default_factory=list)
    availability_zone: str | None = None
    config_drive: bool = False
    description: str | None = None
    admin_pass: str | None = None
    project_id: str | None = None  # who booted it (None: booted without auth)
    user_id: str | None = None
    networks: str = "none"  # what the boot asked: auto (a port) or none; older rows: none
    port: Port | None = None  # written once, by the build (compute/network.py)
    # Where the compute API placed it and whether that host is up (Nova 2.16 host_status):
    # filled by the cluster service when it reads the instance, never stored by the agent.
    host: str | None = None
    host_status: str | None = None

    @property
    def status(self) -> str:
        if self.vm_state == ACTIVE and self.task_state in STATUS_BY_TASK_STATE:
            return STATUS_BY_TASK_STATE[self.task_state]
        return STATUS_BY_VM_STATE.get(self.vm_state, "UNKNOWN")
