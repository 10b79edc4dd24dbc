"""Host aggregates (Nova's os-aggregates): named groups of hosts with metadata, in the compute
API's database (SQLAlchemy Core, portable SQL: SQLite or PostgreSQL).

An aggregate's `availability_zone` metadata is the zone of its hosts, as in Nova: `zoned()`
applies it to the registry's HostStates before scheduling, and a host may not sit in two
aggregates naming different zones. The service layer knows nothing of HTTP; it raises
chute.errors that compute/api.py's table maps to statuses.
"""

from __future__ import annotations

import builtins
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from sqlalchemy import (
    Column,
    DateTime,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    delete,
    insert,
    select,
    update,
)
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from chute.compute.db import create_tables
from chute.compute.host_state import HostState
from chute.errors import BadComputeRequest, ComputeConflict, ComputeNotFound

ZONE_KEY = "availability_zone"
NAME_MAX = 255

_metadata = MetaData()

aggregates = Table(
    "aggregates", _metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("uuid", String(36), nullable=False, unique=True),
    Column("name", String(NAME_MAX), nullable=False, unique=True),
    Column("created_at", DateTime, nullable=False),
    Column("updated_at", DateTime),
)
aggregate_hosts = Table(
    "aggregate_hosts", _metadata,
    Column("aggregate_id", Integer, ForeignKey("aggregates.id"), primary_key=True),
    Column("host", String(255), primary_key=True),
)
aggregate_metadata = Table(
    "aggregate_metadata", _metadata,
    Column("aggregate_id", Integer, ForeignKey("aggregates.id"), primary_key=True),
    Column("key", String(255), primary_key=True),
    Column("value", String(255), nullable=False),
)


@dataclass(frozen=True)
class Aggregate:
    id: int
    uuid: str
    name: str
    hosts: tuple[str, ...]
    metadata: Mapping[str, str]
    created_at: datetime
    updated_at: datetime | None

    @property
    def availability_zone(self) -> str | None:
        return self.metadata.get(ZONE_KEY)


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _check_text(field: str, value: object) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > NAME_MAX:
        raise BadComputeRequest(f"Invalid input for field/attribute {field}: it must be a "
                                f"string of 1 to {NAME_MAX} characters, not only blanks.")
    return value


class Aggregates:
    """CRUD on aggregates. `known_host(name)` says whether the host registry has that host
    (add_host refuses an unknown one, as Nova does)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        create_tables(engine, _metadata)

    def list(self) -> list[Aggregate]:
        with self.engine.connect() as conn:
            ids = conn.execute(select(aggregates.c.id).order_by(aggregates.c.id)).scalars()
            return [self._load(conn, found) for found in list(ids)]

    def get(self, aggregate_id: str | int) -> Aggregate:
        with self.engine.connect() as conn:
            return self._load(conn, _id(aggregate_id))

    def create(self, name: object, zone: object = None) -> Aggregate:
        name = _check_text("name", name)
        metadata = {} if zone is None else {ZONE_KEY: _check_text(ZONE_KEY, zone)}
        try:
            with self.engine.begin() as conn:
                created = conn.execute(insert(aggregates).values(
                    uuid=str(uuid.uuid4()), name=name, created_at=_now()))
                key = created.inserted_primary_key
                assert key is not None
                new_id = int(key[0])
                _set_metadata(conn, new_id, metadata)
                return self._load(conn, new_id)
        except IntegrityError:
            raise ComputeConflict(f"Aggregate {name} already exists.") from None

    def update(self, aggregate_id: str | int, name: object = None,
               zone: object = None) -> Aggregate:
        found = self.get(aggregate_id)
        values: dict[str, object] = {"updated_at": _now()}
        if name is not None:
            values["name"] = _check_text("name", name)
        try:
            with self.engine.begin() as conn:
                if zone is not None:
                    zone = _check_text(ZONE_KEY, zone)
                    self._check_zone(conn, found, zone, BadComputeRequest)
                    _set_metadata(conn, found.id, {ZONE_KEY: zone})
                conn.execute(update(aggregates).where(aggregates.c.id == found.id)
                             .values(**values))
                return self._load(conn, found.id)
        except IntegrityError:
            raise ComputeConflict(f"Aggregate {name} already exists.") from None

    def set_metadata(self, aggregate_id: str | int, metadata: object) -> Aggregate:
        """Nova's set_metadata: each key set to its value, or removed when the value is null."""
        if not isinstance(metadata, dict) or not metadata:
            raise BadComputeRequest("set_metadata needs a non-empty metadata object.")
        for key, value in metadata.items():
            _check_text("metadata key", key)
            if value is not None:
                _check_text(f"metadata {key}", value)
        found = self.get(aggregate_id)
        with self.engine.begin() as conn:
            zone = metadata.get(ZONE_KEY)
            if zone is not None:
                self._check_zone(conn, found, zone, BadComputeRequest)
            _set_metadata(conn, found.id, metadata)
            conn.execute(update(aggregates).where(aggregates.c.id == found.id)
                         .values(updated_at=_now()))
            return self._load(conn, found.id)

    def delete(self, aggregate_id: str | int) -> None:
        found = self.get(aggregate_id)
        if found.hosts:
            raise BadComputeRequest(f"Cannot delete aggregate {found.id}: it still has hosts "
                                    f"({', '.join(found.hosts)}); remove them first.")
        with self.engine.begin() as conn:
            conn.execute(delete(aggregate_metadata)
                         .where(aggregate_metadata.c.aggregate_id == found.id))
            conn.execute(delete(aggregates).where(aggregates.c.id == found.id))

    def add_host(self, aggregate_id: str | int, host: object, known: bool) -> Aggregate:
        name = _check_text("host", host)
        if not known:
            raise ComputeNotFound(f"Compute host {name} could not be found.")
        found = self.get(aggregate_id)
        if name in found.hosts:
            raise ComputeConflict(f"Aggregate {found.id} already has host {name}.")
        try:
            with self.engine.begin() as conn:
                if found.availability_zone is not None:
                    self._check_host_zone(conn, found, name, found.availability_zone)
                conn.execute(insert(aggregate_hosts).values(aggregate_id=found.id, host=name))
                return self._load(conn, found.id)
        except IntegrityError:
            raise ComputeConflict(f"Aggregate {found.id} already has host {name}.") from None

    def remove_host(self, aggregate_id: str | int, host: object) -> Aggregate:
        name = _check_text("host", host)
        found = self.get(aggregate_id)
        with self.engine.begin() as conn:
            removed = conn.execute(delete(aggregate_hosts).where(
                aggregate_hosts.c.aggregate_id == found.id,
                aggregate_hosts.c.host == name)).rowcount
            if removed != 1:
                raise ComputeNotFound(f"Cannot remove host {name} from aggregate {found.id}: "
                                      "it is not in it.")
            return self._load(conn, found.id)

    def forget_host(self, host: str) -> None:
        """The host's compute service was deleted: it leaves every aggregate, as in Nova."""
        with self.engine.begin() as conn:
            conn.execute(delete(aggregate_hosts).where(aggregate_hosts.c.host == host))

    def zones(self) -> dict[str, str]:
        """host -> the availability zone its aggregates give it."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(aggregate_hosts.c.host, aggregate_metadata.c.value)
                .join(aggregate_metadata,
                      aggregate_metadata.c.aggregate_id == aggregate_hosts.c.aggregate_id)
                .where(aggregate_metadata.c.key == ZONE_KEY)).all()
        return {row.host: row.value for row in rows}

    def zoned(self, hosts: Sequence[HostState]) -> builtins.list[HostState]:
        """The hosts with the zone their aggregates give them (else the agent's own)."""
        zones = self.zones()
        return [replace(h, availability_zone=zones[h.host]) if h.host in zones else h
                for h in hosts]

    def _check_zone(self, conn: Connection, found: Aggregate, zone: str,
                    error: type[BadComputeRequest] | type[ComputeConflict]) -> None:
        for host in found.hosts:
            self._check_host_zone(conn, found, host, zone, error)

    def _check_host_zone(self, conn: Connection, found: Aggregate, host: str, zone: str,
                         error: type[BadComputeRequest] | type[ComputeConflict]
                         = ComputeConflict) -> None:
        """Nova's rule: a host is in one availability zone, whatever its aggregates."""
        rows = conn.execute(
            select(aggregates.c.name, aggregate_metadata.c.value)
            .join(aggregate_hosts, aggregate_hosts.c.aggregate_id == aggregates.c.id)
            .join(aggregate_metadata, aggregate_metadata.c.aggregate_id == aggregates.c.id)
            .where(aggregate_hosts.c.host == host, aggregate_metadata.c.key == ZONE_KEY,
                   aggregates.c.id != found.id)).all()
        for row in rows:
            if row.value != zone:
                raise error(f"Host {host} is already in availability zone {row.value!r} "
                            f"(aggregate {row.name}); it cannot also be in {zone!r}.")

    def _load(self, conn: Connection, aggregate_id: int) -> Aggregate:
        row = conn.execute(select(aggregates).where(aggregates.c.id == aggregate_id)).first()
        if row is None:
            raise ComputeNotFound(f"Aggregate {aggregate_id} could not be found.")
        hosts = conn.execute(select(aggregate_hosts.c.host)
                             .where(aggregate_hosts.c.aggregate_id == aggregate_id)
                             .order_by(aggregate_hosts.c.host)).scalars()
        metadata = conn.execute(select(aggregate_metadata.c.key, aggregate_metadata.c.value)
                                .where(aggregate_metadata.c.aggregate_id == aggregate_id)).all()
        return Aggregate(row.id, row.uuid, row.name, tuple(hosts),
                         {m.key: m.value for m in metadata}, row.created_at, row.updated_at)


def _id(aggregate_id: str | int) -> int:
    try:
        return int(aggregate_id)
    except ValueError:
        raise ComputeNotFound(f"Aggregate {aggregate_id} could not be found.") from None


def _set_metadata(conn: Connection, aggregate_id: int,
                  metadata: Mapping[str, str | None]) -> None:
    keys: Iterable[str] = metadata.keys()
    conn.execute(delete(aggregate_metadata).where(
        aggregate_metadata.c.aggregate_id == aggregate_id,
        aggregate_metadata.c.key.in_(list(keys))))
    rows = [{"aggregate_id": aggregate_id, "key": key, "value": value}
            for key, value in metadata.items() if value is not None]
    if rows:
        conn.execute(insert(aggregate_metadata), rows)
