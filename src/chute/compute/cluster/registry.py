"""The host registry and the placements, in the compute API's database (SQLAlchemy Core,
portable SQL: SQLite on one machine, PostgreSQL for several API nodes).

Every decision several API processes could race on is one conditional UPDATE whose rowcount
says who won, so no process keeps truth in memory:

- a **heartbeat** writes the host's state and `last_seen` (the API's clock, never the agent's);
- a **claim** adds a server's flavor to a host's usage only if the host is enabled, alive
  and stays within its allocation ratios, and assigns the placement in the same transaction;
- a **lease** (`lease_until`) gives one process the right to schedule a server that has no
  host yet; an expired lease (its process died) lets another take over;
- a **release** clears the placement's host where it still names that host, then takes the
  flavor off the host's usage: a server is released once, whoever tries.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    bindparam,
    delete,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from chute.compute.db import create_tables, from_row, instances, reads, save_state
from chute.compute.host_state import HostState
from chute.compute.instance import BUILDING, Instance, utcnow

_metadata = MetaData()

hosts = Table(
    "hosts", _metadata,
    Column("host", String(255), primary_key=True),
    Column("agent_url", String(1024), nullable=False),
    Column("availability_zone", String(255), nullable=False),
    Column("vcpus", Integer, nullable=False),
    Column("memory_mb", Integer, nullable=False),
    Column("disk_gb", Integer, nullable=False),
    Column("vcpus_used", Integer, nullable=False, default=0),
    Column("memory_mb_used", Integer, nullable=False, default=0),
    Column("disk_gb_used", Integer, nullable=False, default=0),
    Column("running_instances", Integer, nullable=False, default=0),
    Column("cpu_allocation_ratio", Float, nullable=False),
    Column("ram_allocation_ratio", Float, nullable=False),
    Column("disk_allocation_ratio", Float, nullable=False),
    Column("filesystem_ids_json", Text, nullable=False),
    Column("cached_images_json", Text, nullable=False),
    Column("enabled", Boolean, nullable=False, default=True),
    Column("disabled_reason", Text),
    Column("forced_down", Boolean, nullable=False, default=False),
    Column("last_seen", DateTime, nullable=False),
    Column("created", DateTime, nullable=False),
)

placements = Table(
    "placements", _metadata,
    Column("instance_id", String(36), primary_key=True),
    Column("host", String(255), index=True),  # NULL: not placed (yet, or again)
    Column("vcpus", Integer, nullable=False),
    Column("memory_mb", Integer, nullable=False),
    Column("disk_gb", Integer, nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("tried_json", Text, nullable=False, default="[]"),  # hosts tried, in order
    Column("lease_until", DateTime),  # a process is scheduling it until then
    Column("agent_updated", DateTime),  # the newest instance state applied from its agent
)

LEASE = timedelta(seconds=30)

# The statements of every create, build and agent report, built once (building one cost as
# much CPU as running it: py-spy on the compute API during a burst of creates).
_P, _H, _I = placements.c, hosts.c, instances.c
_HOSTS = select(hosts).order_by(_H.host)
_HOST = select(hosts).where(_H.host == bindparam("_host"))
_SERVERS = (select(instances, _P.host, _H.last_seen, _H.enabled, _H.forced_down)
            .select_from(instances.outerjoin(placements, _P.instance_id == _I.id)
                         .outerjoin(hosts, _H.host == _P.host)))
_SERVER = _SERVERS.where(_I.id == bindparam("_id"))
_ALL_SERVERS = _SERVERS.order_by(_I.created.desc(), _I.id)
_PROJECT_SERVERS = _ALL_SERVERS.where(_I.project_id == bindparam("project"))
_PLACED = select(placements, instances).join(instances, _I.id == _P.instance_id)
_PLACED_IDS = _PLACED.where(_P.instance_id.in_(bindparam("ids", expanding=True)))
_PLACED_ON = _PLACED.where(_P.host == bindparam("_host"))
_PLACEMENT = select(placements).where(_P.instance_id == bindparam("_id"))
_LEASE = (update(placements)
          .where(_P.instance_id == bindparam("_id"), _P.host.is_(None),
                 or_(_P.lease_until.is_(None), _P.lease_until < bindparam("now")))
          .values(lease_until=bindparam("until")).returning(*placements.c))
_TAKE = (update(hosts)
         .where(_H.host == bindparam("_host"), _H.enabled.is_(True), _H.forced_down.is_(False),
                _H.last_seen >= bindparam("cutoff"),
                _H.vcpus_used + bindparam("_vcpus") <= _H.vcpus * _H.cpu_allocation_ratio,
                _H.memory_mb_used + bindparam("_ram") <= _H.memory_mb * _H.ram_allocation_ratio,
                _H.disk_gb_used + bindparam("_disk") <= _H.disk_gb * _H.disk_allocation_ratio)
         .values(vcpus_used=_H.vcpus_used + bindparam("_vcpus"),
                 memory_mb_used=_H.memory_mb_used + bindparam("_ram"),
                 disk_gb_used=_H.disk_gb_used + bindparam("_disk"),
                 running_instances=_H.running_instances + 1))
_GIVE_BACK = (update(hosts).where(_H.host == bindparam("_host"))
              .values(vcpus_used=_H.vcpus_used - bindparam("_vcpus"),
                      memory_mb_used=_H.memory_mb_used - bindparam("_ram"),
                      disk_gb_used=_H.disk_gb_used - bindparam("_disk"),
                      running_instances=_H.running_instances - 1))
_ASSIGN = (update(placements).where(_P.instance_id == bindparam("_id"), _P.host.is_(None))
           .values(host=bindparam("_host"), lease_until=None, attempts=_P.attempts + 1,
                   tried_json=bindparam("tried")))
_ZONE = (update(instances)
         .where(_I.id == bindparam("_id"),
                or_(_I.availability_zone.is_(None), _I.availability_zone == ""))
         .values(availability_zone=bindparam("zone")))
_ACCEPT = (update(placements)
           .where(_P.instance_id == bindparam("_id"), _P.host == bindparam("_host"),
                  or_(_P.agent_updated.is_(None), _P.agent_updated < bindparam("stamp")))
           .values(agent_updated=bindparam("stamp")))
_REMOVE = delete(placements).where(_P.instance_id == bindparam("_id")).returning(*placements.c)
_ADD = insert(placements).values(host=None, attempts=0, tried_json="[]")
_DELETE_INSTANCE = delete(instances).where(_I.id == bindparam("_id"))


class _Lost(Exception):
    """The placement changed between the claim's two UPDATEs: roll the transaction back."""


@dataclass(frozen=True)
class HostReport:
    """What an agent says of itself at each heartbeat (PUT /internal/v1/hosts/{host})."""

    host: str
    agent_url: str
    availability_zone: str
    vcpus: int
    memory_mb: int
    disk_gb: int
    cpu_allocation_ratio: float
    ram_allocation_ratio: float
    disk_allocation_ratio: float
    filesystem_ids: frozenset[str]
    cached_images: frozenset[str]


@dataclass(frozen=True)
class Placement:
    instance_id: str
    host: str | None
    vcpus: int
    memory_mb: int
    disk_gb: int
    attempts: int
    tried: tuple[str, ...]
    agent_updated: datetime | None


@dataclass(frozen=True)
class HostRecord:
    state: HostState
    last_seen: datetime


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _naive(value: datetime) -> datetime:
    """Stored naive UTC: SQLite keeps no zone and PostgreSQL's `timestamp` column neither."""
    return value.astimezone(UTC).replace(tzinfo=None)


class Registry:
    def __init__(self, engine: Engine, service_down_time: int) -> None:
        self.engine = engine
        self.reads = reads(engine)
        self.down_time = timedelta(seconds=service_down_time)
        create_tables(engine, _metadata)

    # -- hosts --------------------------------------------------------------------------------

    def heartbeat(self, report: HostReport) -> None:
        now = _naive(utcnow())
        values: dict[str, Any] = {
            "agent_url": report.agent_url, "availability_zone": report.availability_zone,
            "vcpus": report.vcpus, "memory_mb": report.memory_mb, "disk_gb": report.disk_gb,
            "cpu_allocation_ratio": report.cpu_allocation_ratio,
            "ram_allocation_ratio": report.ram_allocation_ratio,
            "disk_allocation_ratio": report.disk_allocation_ratio,
            "filesystem_ids_json": json.dumps(sorted(report.filesystem_ids)),
            "cached_images_json": json.dumps(sorted(report.cached_images)),
            "last_seen": now}
        for _ in range(2):  # portable upsert: UPDATE, else INSERT; a racing INSERT -> UPDATE
            with self.engine.begin() as conn:
                if conn.execute(update(hosts).where(hosts.c.host == report.host)
                                .values(**values)).rowcount == 1:
                    return
            try:
                with self.engine.begin() as conn:
                    conn.execute(insert(hosts).values(
                        host=report.host, created=now, vcpus_used=0, memory_mb_used=0,
                        disk_gb_used=0, running_instances=0, enabled=True, forced_down=False,
                        **values))
                return
            except IntegrityError:
                continue

    def alive_cutoff(self) -> datetime:
        return _naive(utcnow() - self.down_time)

    def host_records(self) -> list[HostRecord]:
        cutoff = _aware(self.alive_cutoff())
        with self.reads.connect() as conn:
            rows = conn.execute(_HOSTS).all()
        return [HostRecord(_host_state(row, _aware(row.last_seen) >= cutoff),
                           _aware(row.last_seen)) for row in rows]

    def host_states(self) -> list[HostState]:
        return [record.state for record in self.host_records()]

    def host(self, name: str) -> HostState | None:
        cutoff = _aware(self.alive_cutoff())
        with self.reads.connect() as conn:
            row = conn.execute(_HOST, {"_host": name}).first()
        return _host_state(row, _aware(row.last_seen) >= cutoff) if row is not None else None

    # -- servers as the API shows them ----------------------------------------------------------

    def servers(self, instance_id: str | None = None,
                project_id: str | None = None) -> list[Instance]:
        """The instance `instance_id`, or every one (of `project_id`), newest first, each
        with its host and that host's status (Nova's host_status), in one SELECT."""
        params: dict[str, Any]
        if instance_id is not None:
            query, params = _SERVER, {"_id": instance_id}
        elif project_id is not None:
            query, params = _PROJECT_SERVERS, {"project": project_id}
        else:
            query, params = _ALL_SERVERS, {}
        cutoff = _aware(self.alive_cutoff())
        with self.reads.connect() as conn:
            rows = conn.execute(query, params).all()
        if instance_id is not None and project_id is not None:
            rows = [row for row in rows if row.project_id == project_id]
        found = []
        for row in rows:
            inst = from_row(row)
            inst.host, inst.host_status = row.host, _server_host_status(row, cutoff)
            found.append(inst)
        return found

    # -- placements ---------------------------------------------------------------------------

    def add(self, instance_id: str, vcpus: int, memory_mb: int, disk_gb: int,
            conn: Connection | None = None) -> bool:
        """A server to place; False if it has its row already (another process added it).
        In `conn`'s transaction if given (a new server's, whose id nobody else has)."""
        if conn is not None:
            conn.execute(_ADD, {"instance_id": instance_id, "vcpus": vcpus,
                                "memory_mb": memory_mb, "disk_gb": disk_gb})
            return True
        try:
            with self.engine.begin() as own:
                self.add(instance_id, vcpus, memory_mb, disk_gb, own)
        except IntegrityError:
            return False
        return True

    def unplaced_builds(self) -> list[tuple[str, str]]:
        return unplaced_builds(self.engine, LEASE)

    def placement(self, instance_id: str) -> Placement | None:
        with self.reads.connect() as conn:
            row = conn.execute(_PLACEMENT, {"_id": instance_id}).first()
        return _placement(row) if row is not None else None

    def lease(self, instance_id: str) -> Placement | None:
        """Take the right to schedule an unplaced server for LEASE: its placement, or None if
        another process holds it or the server is placed (or gone)."""
        now = _naive(utcnow())
        with self.engine.begin() as conn:
            row = conn.execute(_LEASE, {"_id": instance_id, "now": now,
                                        "until": now + LEASE}).first()
        return _placement(row) if row is not None else None

    def claim(self, instance_id: str, host: str, zone: str | None = None) -> bool:
        """Place the leased server on `host` if the host is enabled, alive and still has
        room for it by its allocation ratios: one transaction, two conditional UPDATEs; and
        the server's availability zone becomes `zone` (the host's) if it has none."""
        try:
            with self.engine.begin() as conn:
                if not self._claim(conn, instance_id, host):
                    return False
                if zone:
                    conn.execute(_ZONE, {"_id": instance_id, "zone": zone})
                return True
        except _Lost:
            return False

    def _claim(self, conn: Connection, instance_id: str, host: str) -> bool:
        row = conn.execute(_PLACEMENT, {"_id": instance_id}).first()
        if row is None or row.host is not None:
            return False
        claimed = conn.execute(_TAKE, {"_host": host, "cutoff": self.alive_cutoff(),
                                       **_flavor(row)}).rowcount == 1
        if not claimed:
            return False
        tried = [*json.loads(row.tried_json), host]
        assigned = conn.execute(_ASSIGN, {"_id": instance_id, "_host": host,
                                          "tried": json.dumps(tried)}).rowcount == 1
        if not assigned:
            raise _Lost()  # another process placed it meanwhile: undo the host's claim
        return True

    def release(self, instance_id: str, host: str) -> bool:
        """Take the server off `host` (for a reschedule); False if it is not placed there."""
        with self.engine.begin() as conn:
            return self._release(conn, instance_id, host)

    def remove(self, instance_id: str) -> None:
        """The server is not to be placed any more: release its host, forget the placement."""
        with self.engine.begin() as conn:
            self._remove(conn, instance_id)

    def delete_server(self, instance_id: str,
                      then: Callable[[Connection], None] | None = None) -> None:
        """remove() and the instance's row, then `then`, in one transaction."""
        with self.engine.begin() as conn:
            self._remove(conn, instance_id)
            conn.execute(_DELETE_INSTANCE, {"_id": instance_id})
            if then is not None:
                then(conn)

    def _remove(self, conn: Connection, instance_id: str) -> None:
        """The DELETE hands the row to one process only, so a host is released once."""
        row = conn.execute(_REMOVE, {"_id": instance_id}).first()
        if row is not None and row.host is not None:
            self._give_back(conn, row.host, row)

    def _release(self, conn: Connection, instance_id: str, host: str) -> bool:
        row = conn.execute(select(placements).where(placements.c.instance_id == instance_id,
                                                    placements.c.host == host)).first()
        if row is None:
            return False
        if conn.execute(update(placements)
                        .where(placements.c.instance_id == instance_id,
                               placements.c.host == host)
                        .values(host=None, agent_updated=None)).rowcount != 1:
            return False
        self._give_back(conn, host, row)
        return True

    def _give_back(self, conn: Connection, host: str, row: Any) -> None:
        """Take a placement's flavor (`row`) off its host's usage."""
        conn.execute(_GIVE_BACK, {"_host": host, **_flavor(row)})

    def placed_instances(self, instance_ids: Sequence[str] | None = None,
                         host: str | None = None) -> dict[str, tuple[Placement, Instance]]:
        """The placements of `instance_ids` (or of every server placed on `host`) with their
        instances, in one SELECT: what applying an agent's reports reads."""
        params: dict[str, Any]
        if instance_ids is not None:
            query, params = _PLACED_IDS, {"ids": list(instance_ids)}
        elif host is not None:
            query, params = _PLACED_ON, {"_host": host}
        else:
            query, params = _PLACED, {}
        with self.reads.connect() as conn:
            rows = conn.execute(query, params).all()
        if instance_ids is not None and host is not None:
            rows = [row for row in rows if row.host == host]
        return {row.instance_id: (_placement(row), from_row(row)) for row in rows}

    def apply_state(self, inst: Instance, host: str, updated: datetime, with_port: bool,
                    then: Callable[[Connection], None] | None = None) -> bool:
        """_accept_state and, if accepted, the instance's state written (its port too if
        `with_port`), then `then` run, in one transaction: of two reports applied at once by
        two processes, the newer is the one that stays (its UPDATE of the placement waits
        for the other's commit, then sees its stamp). A port that is another instance's is
        not recorded (assign_port's rule): the state is written again without it."""
        try:
            with self.engine.begin() as conn:
                return self._apply_state(conn, inst, host, updated, with_port, then)
        except IntegrityError:
            if not with_port:
                raise
        with self.engine.begin() as conn:
            return self._apply_state(conn, inst, host, updated, False, then)

    def _apply_state(self, conn: Connection, inst: Instance, host: str, updated: datetime,
                     with_port: bool, then: Callable[[Connection], None] | None) -> bool:
        if not (self._accept_state(conn, inst.id, host, updated) and
                save_state(conn, inst, with_port)):
            return False
        if then is not None:
            then(conn)
        return True

    def _accept_state(self, conn: Connection, instance_id: str, host: str,
                      updated: datetime) -> bool:
        """May an agent's report of the instance, as of `updated` on its side, be applied?
        Only from the host it is placed on, and only if newer than the last one applied (a
        heartbeat repeating a state already reported writes nothing)."""
        result = conn.execute(_ACCEPT, {"_id": instance_id, "_host": host,
                                        "stamp": _naive(updated)})
        return result.rowcount == 1

    def stale(self) -> tuple[list[Placement], list[str]]:
        """(placements on hosts without a heartbeat for service_down_time, ids of unplaced
        servers whose scheduling lease has expired or was never taken)."""
        cutoff, now = self.alive_cutoff(), _naive(utcnow())
        with self.reads.connect() as conn:
            dead = conn.execute(
                select(placements).join(hosts, hosts.c.host == placements.c.host)
                .where(or_(hosts.c.last_seen < cutoff, hosts.c.forced_down.is_(True)))).all()
            orphans = conn.execute(
                select(placements.c.instance_id).where(
                    placements.c.host.is_(None),
                    or_(placements.c.lease_until.is_(None),
                        placements.c.lease_until < now))).all()
        return [_placement(row) for row in dead], [row.instance_id for row in orphans]


def unplaced_builds(engine: Engine, older_than: timedelta) -> list[tuple[str, str]]:
    """(id, flavor id) of servers in BUILD without a placement row, recorded before
    `older_than` ago: their API process died between recording them and adding the row."""
    cutoff = _naive(utcnow() - older_than)
    query = (select(instances.c.id, instances.c.flavor_id)
             .select_from(instances.outerjoin(placements,
                                              placements.c.instance_id == instances.c.id))
             .where(placements.c.instance_id.is_(None), instances.c.vm_state == BUILDING,
                    instances.c.created < cutoff))
    with engine.connect() as conn:
        return [(row.id, row.flavor_id) for row in conn.execute(query).all()]


def _host_state(row: Any, alive: bool) -> HostState:
    return HostState(
        host=row.host, agent_url=row.agent_url, availability_zone=row.availability_zone,
        vcpus=row.vcpus, memory_mb=row.memory_mb, disk_gb=row.disk_gb,
        vcpus_used=row.vcpus_used, memory_mb_used=row.memory_mb_used,
        disk_gb_used=row.disk_gb_used, cpu_allocation_ratio=row.cpu_allocation_ratio,
        ram_allocation_ratio=row.ram_allocation_ratio,
        disk_allocation_ratio=row.disk_allocation_ratio,
        filesystem_ids=frozenset(json.loads(row.filesystem_ids_json)),
        cached_images=frozenset(json.loads(row.cached_images_json)),
        running_instances=row.running_instances, enabled=bool(row.enabled),
        disabled_reason=row.disabled_reason, forced_down=bool(row.forced_down), alive=alive)


def _flavor(row: Any) -> dict[str, int]:
    """A placement row's usage, as _TAKE and _GIVE_BACK name it."""
    return {"_vcpus": row.vcpus, "_ram": row.memory_mb, "_disk": row.disk_gb}


def _placement(row: Any) -> Placement:
    return Placement(row.instance_id, row.host, row.vcpus, row.memory_mb, row.disk_gb,
                     row.attempts, tuple(json.loads(row.tried_json)),
                     _aware(row.agent_updated) if row.agent_updated is not None else None)


def _server_host_status(row: Any, cutoff: datetime) -> str:
    """host_status from a row of Registry.servers (its host's columns, NULL if none)."""
    if row.host is None:
        return ""
    if row.last_seen is None:
        return "UNKNOWN"
    if row.forced_down or _aware(row.last_seen) < cutoff:
        return "DOWN"
    return "UP" if row.enabled else "MAINTENANCE"


def host_status(state: HostState | None) -> str:
    """Nova's host_status (2.16) of a server on that host."""
    if state is None:
        return "UNKNOWN"
    if state.forced_down or not state.alive:
        return "DOWN"
    if not state.enabled:
        return "MAINTENANCE"
    return "UP"
