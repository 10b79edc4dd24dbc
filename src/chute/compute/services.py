"""The compute services (Nova's os-services) and hypervisors (os-hypervisors) an operator sees:
one `nova-compute` service and one hypervisor per host of the registry.

Enabling, disabling (with a reason) and forcing down write the host's row in the registry,
which the scheduler's ComputeFilter and the registry's claim read: a disabled host gets no new
servers. Nova numbers services in its database; chute's hosts are named, so a service's uuid
(2.53) is derived from the host name (uuid5, the same on every API node) and its integer id
(before 2.53) is the host's rank by registration, stable since hosts are never removed.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime

from sqlalchemy import select, update

from chute.compute.cluster.registry import Registry, hosts
from chute.compute.host_state import HostState
from chute.errors import BadComputeRequest, ComputeNotFound

BINARY = "nova-compute"
REASON_MAX = 255
_NAMESPACE = uuid.UUID("5e2d6a4c-8f0b-4c1e-9a57-3c2f1d0b9e61")


def service_uuid(host: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, f"{BINARY}:{host}"))


@dataclass(frozen=True)
class Service:
    id: int  # before 2.53
    uuid: str  # 2.53 and later, for services and hypervisors alike
    state: HostState
    updated_at: datetime

    @property
    def host(self) -> str:
        return self.state.host

    @property
    def up(self) -> bool:
        return self.state.alive and not self.state.forced_down


class Services:
    """`zones()`: host -> the availability zone its aggregates give it, which a service shows
    instead of its agent's own, as in Nova."""

    def __init__(self, registry: Registry, zones: Callable[[], dict[str, str]]) -> None:
        self.registry = registry
        self.zones = zones

    def list(self) -> list[Service]:
        with self.registry.engine.connect() as conn:
            order = conn.execute(select(hosts.c.host)
                                 .order_by(hosts.c.created, hosts.c.host)).scalars().all()
        rank = {name: number for number, name in enumerate(order, 1)}
        zones = self.zones()
        found = []
        for record in self.registry.host_records():
            state = record.state
            if state.host in zones:
                state = replace(state, availability_zone=zones[state.host])
            found.append(Service(rank.get(state.host, 0), service_uuid(state.host), state,
                                 record.last_seen))
        return sorted(found, key=lambda service: service.id)

    def by_host(self, host: str) -> Service:
        for service in self.list():
            if service.host == host:
                return service
        raise ComputeNotFound(f"Compute host {host} could not be found.")

    def by_uuid(self, service_id: str) -> Service:
        for service in self.list():
            if service.uuid == service_id:
                return service
        raise ComputeNotFound(f"Service {service_id} could not be found.")

    def by_id(self, service_id: str) -> Service:
        """A hypervisor or service by its integer id (before 2.53) or uuid (2.53)."""
        for service in self.list():
            if service_id in (str(service.id), service.uuid):
                return service
        raise ComputeNotFound(f"Hypervisor {service_id} could not be found.")

    def enable(self, host: str) -> Service:
        return self._set(host, enabled=True, disabled_reason=None)

    def disable(self, host: str, reason: object = None) -> Service:
        if reason is not None and (not isinstance(reason, str) or not reason.strip()
                                   or len(reason) > REASON_MAX):
            raise BadComputeRequest(f"Invalid input for field/attribute disabled_reason: a "
                                    f"string of 1 to {REASON_MAX} characters.")
        return self._set(host, enabled=False, disabled_reason=reason)

    def force_down(self, host: str, forced_down: object) -> Service:
        if not isinstance(forced_down, bool):
            raise BadComputeRequest("Invalid input for field/attribute forced_down: "
                                    f"{forced_down!r} is not of type 'boolean'.")
        return self._set(host, forced_down=forced_down)

    def _set(self, host: str, **values: object) -> Service:
        with self.registry.engine.begin() as conn:
            changed = conn.execute(update(hosts).where(hosts.c.host == host)
                                   .values(**values)).rowcount
        if changed != 1:
            raise ComputeNotFound(f"Compute host {host} could not be found.")
        return self.by_host(host)
