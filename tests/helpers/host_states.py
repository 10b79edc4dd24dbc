"""HostStates and RequestSpecs for the scheduler's unit tests: plain data, no processes."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from chute.compute.host_state import HostState, RequestSpec

IMAGE = "11111111-2222-3333-4444-555555555555"


def host(name: str, **changes: Any) -> HostState:
    """An idle 8-CPU, 8 GiB, 100 GB host in zone nova, with Nova's default ratios."""
    base = HostState(host=name, agent_url=f"http://{name}:8774", availability_zone="nova",
                     vcpus=8, memory_mb=8192, disk_gb=100)
    return replace(base, **changes)


def spec(**changes: Any) -> RequestSpec:
    """A boot of IMAGE with m1.small's 1 VCPU, 2048 MB and 20 GB."""
    base = RequestSpec(instance_id="server-1", image_id=IMAGE, vcpus=1, memory_mb=2048,
                       disk_gb=20)
    return replace(base, **changes)
