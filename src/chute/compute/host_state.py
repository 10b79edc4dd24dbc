"""What the scheduler knows of a host and of a boot: the contract between the host registry
(fed by the agents' registrations and heartbeats) and the scheduler that places servers.

Both sides are plain data so the scheduler is a pure function of them: it can be explained
(`explain`), tested without processes, and run on any compute API node, since the registry in
the shared database is the only state.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True)
class HostState:
    """One hypervisor host as the compute API's database has it now."""

    host: str  # Nova's `[DEFAULT] host`: unique name of the agent's host
    agent_url: str  # where the compute API reaches the agent's internal endpoints
    availability_zone: str
    vcpus: int
    memory_mb: int
    disk_gb: int
    vcpus_used: int = 0
    memory_mb_used: int = 0
    disk_gb_used: int = 0
    cpu_allocation_ratio: float = 16.0  # Nova's defaults (initial_*_allocation_ratio)
    ram_allocation_ratio: float = 1.5
    disk_allocation_ratio: float = 1.0
    filesystem_ids: frozenset[str] = frozenset()  # ids of the shared filesystems it mounts
    cached_images: frozenset[str] = frozenset()  # image ids present and verified in its _base
    running_instances: int = 0
    enabled: bool = True  # os-services: disabled hosts get no new servers
    disabled_reason: str | None = None
    forced_down: bool = False
    alive: bool = True  # a heartbeat within service_down_time


@dataclass(frozen=True)
class RequestSpec:
    """What one boot asks of a host."""

    instance_id: str
    image_id: str
    vcpus: int
    memory_mb: int
    disk_gb: int
    availability_zone: str | None = None
    image_filesystem_ids: frozenset[str] = frozenset()  # filesystems holding a location of it
    ignore_hosts: frozenset[str] = frozenset()  # hosts already tried for this build


@dataclass(frozen=True)
class Choice:
    """A host that passed every filter, with why it ranks where it does."""

    host: HostState
    weight: float
    reasons: tuple[str, ...] = field(default=())


@dataclass(frozen=True)
class Rejection:
    host: str
    filter_name: str
    reason: str


@dataclass(frozen=True)
class Selection:
    """The hosts to try in order (the first, then the alternates) and the ones filtered out."""

    choices: tuple[Choice, ...]
    rejections: tuple[Rejection, ...] = ()
    # Nova's host_subset_size: the first choice was drawn at random among the best this many
    # (1: the best); the others follow in weighed order.
    subset_size: int = 1


class Scheduler(Protocol):
    def select(self, spec: RequestSpec, hosts: Sequence[HostState]) -> Selection: ...
