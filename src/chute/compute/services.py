"""The compute services (Nova's os-services) and hypervisors (os-hypervisors) an operator sees:
one `nova-compute` service and one hypervisor per host of the registry.

Enabling, disabling (with a reason) and forcing down write the host's row in the registry,
which the scheduler's ComputeFilter and the registry's claim read: a disabled host gets no new
servers. Nova numbers services in its database; chute's hosts are named, so a service's uuid
(2.53) is derived from the host name (uuid5, the same on every API node) and its integer id
(before 2.53) is a number the table `service_numbers` gives a host the first time any node
lists it (in order of registration), never reused: a deleted service's number is not given
to another host, and a host that registers again after its service was deleted gets a new
one, as a new service record in Nova does.

Deleting a service (Nova's `DELETE /os-services/{id}`) removes the host's registry row, its
aggregate memberships and its pre-caching progress; refused (409, Nova's message) while any
server is placed on the host, in the same statement that deletes (so a claim racing with it
either lands first and the delete is refused, or finds no host row and places elsewhere).
A host whose agent still runs registers again at its next heartbeat, enabled, as a new
service.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from sqlalchemy import (
    Column,
    Integer,
    MetaData,
    String,
    Table,
    delete,
    exists,
    insert,
    select,
    update,
)
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from chute.compute import db
from chute.compute.cluster.registry import Registry, hosts, placements
from chute.compute.host_state import HostState
from chute.errors import BadComputeRequest, ComputeConflict, ComputeNotFound

BINARY = "nova-compute"
REASON_MAX = 255
_NAMESPACE = uuid.UUID("5e2d6a4c-8f0b-4c1e-9a57-3c2f1d0b9e61")
HOSTING = ("Unable to delete compute service that is hosting instances. Migrate or delete "
           "the instances first.")  # Nova's 409

_metadata = MetaData()

# sqlite_autoincrement: SQLite would otherwise give the highest number again once deleted.
service_numbers = Table(
    "service_numbers", _metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("host", String(255), nullable=False, unique=True),
    sqlite_autoincrement=True,
)


def service_uuid(host: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, f"{BINARY}:{host}"))


def create_tables(engine: Engine) -> None:
    """Before the workers start (compute/operators.make_scheduler): they would race on it."""
    db.create_tables(engine, _metadata)


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

    def __init__(self, registry: Registry, zones: Callable[[], dict[str, str]],
                 forget: Sequence[Callable[[str], None]] = ()) -> None:
        """`forget`: what else must let go of a host whose service is deleted (its
        aggregates, its pre-caching progress)."""
        self.registry = registry
        self.zones = zones
        self.forget = tuple(forget)

    def list(self) -> list[Service]:
        numbers = self._numbers()
        zones = self.zones()
        found = []
        for record in self.registry.host_records():
            state = record.state
            if state.host in zones:
                state = replace(state, availability_zone=zones[state.host])
            found.append(Service(numbers.get(state.host, 0), service_uuid(state.host), state,
                                 record.last_seen))
        return sorted(found, key=lambda service: service.id)

    def _numbers(self) -> dict[str, int]:
        """host -> its service's integer id; hosts without one get the next, in order of
        registration (a node racing to number the same host loses on `host`'s uniqueness
        and reads the winner's)."""
        engine = self.registry.engine
        with engine.connect() as conn:
            numbers = dict(conn.execute(select(service_numbers.c.host,
                                               service_numbers.c.id)).tuples().all())
            unnumbered = conn.execute(select(hosts.c.host).where(
                hosts.c.host.not_in(select(service_numbers.c.host)))
                .order_by(hosts.c.created, hosts.c.host)).scalars().all()
        if not unnumbered:
            return numbers
        for host in unnumbered:
            try:
                with engine.begin() as conn:
                    conn.execute(insert(service_numbers).values(host=host))
            except IntegrityError:
                continue
        with engine.connect() as conn:
            return dict(conn.execute(select(service_numbers.c.host,
                                            service_numbers.c.id)).tuples().all())

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

    def by_number(self, number: int) -> Service:
        """A service by its integer id (before 2.53)."""
        for service in self.list():
            if service.id == number:
                return service
        raise ComputeNotFound(f"Service {number} could not be found.")

    def by_id(self, service_id: str) -> Service:
        """A hypervisor or service by its integer id (before 2.53) or uuid (2.53)."""
        for service in self.list():
            if service_id in (str(service.id), service.uuid):
                return service
        raise ComputeNotFound(f"Hypervisor {service_id} could not be found.")

    def delete(self, service: Service) -> None:
        """Remove the host's service record (Nova's service delete); 409 while a server is
        placed there."""
        host = service.host
        idle = ~exists().where(placements.c.host == host)
        with self.registry.engine.begin() as conn:
            removed = conn.execute(delete(hosts).where(hosts.c.host == host, idle)).rowcount
            if removed == 1:
                conn.execute(delete(service_numbers).where(service_numbers.c.host == host))
        if removed != 1:
            if self.registry.host(host) is not None:
                raise ComputeConflict(HOSTING)
            raise ComputeNotFound(f"Service {service.uuid} could not be found.")
        for forget in self.forget:
            forget(host)

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
