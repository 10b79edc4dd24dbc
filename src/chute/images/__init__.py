"""The image service: a Glance v2-compatible registry (chute-api)."""
