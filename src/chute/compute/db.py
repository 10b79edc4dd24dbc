"""The agent's own state: instances in SQLite (WAL) so servers survive a restart.

The same tables work on PostgreSQL (the compute API's shared database, several nodes): the
schema is created under an advisory lock (`schema_transaction`), so nodes starting at once
against one empty database do not race on CREATE TABLE, and sessions run in UTC, the zone
every naive timestamp here is in.

Only this module knows SQL. The schema is one small table created on first use; the agent's
state is local to its host, so there is no migration history to carry (the image service's
database, shared by several nodes, is the one that needs Alembic). Columns are only ever
added, nullable: `add_missing_columns` adds at start those a database made by an older chute
lacks, which is all the migration such a schema needs.
"""

from __future__ import annotations

import builtins
import fcntl
import hashlib
import json
import select as io_select
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    bindparam,
    create_engine,
    delete,
    event,
    func,
    insert,
    inspect,
    select,
    update,
)
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError as SQLIntegrityError
from sqlalchemy.exc import InvalidatePoolError

from chute.compute.instance import BUILDING, Fault, Instance, Port, Transfer

_metadata = MetaData()

instances = Table(
    "instances", _metadata,
    Column("id", String(36), primary_key=True),
    Column("name", String(255), nullable=False),
    Column("image_id", String(255), nullable=False),
    Column("flavor_id", String(36), nullable=False),
    Column("vm_state", String(16), nullable=False),
    Column("task_state", String(32)),
    Column("power_state", Integer, nullable=False),
    Column("created", DateTime, nullable=False),
    Column("updated", DateTime, nullable=False),
    Column("launched_at", DateTime),
    Column("fault_code", Integer),
    Column("fault_message", Text),
    Column("fault_created", DateTime),
    Column("transfer_method", String(16)),
    Column("transfer_primitive", String(32)),
    Column("transfer_bytes", BigInteger),  # images pass 2 GiB: PostgreSQL's INTEGER does not
    Column("transfer_seconds", Float),
    Column("build_attempts", Integer, nullable=False, default=0),
    # What the boot request asked for (compute/server_fields.py); JSON text for the dict/list.
    Column("key_name", String(255)),
    Column("key_data", Text),
    Column("user_data", Text),
    Column("metadata_json", Text),
    Column("tags_json", Text),
    Column("availability_zone", String(255)),
    Column("config_drive", Boolean),
    Column("description", Text),
    Column("admin_pass", String(255)),
    Column("project_id", String(255)),
    Column("user_id", String(255)),
    # The server's NIC (compute/network.py): written once by assign_port, never by save().
    Column("networks", String(16)),
    Column("network_name", String(255)),
    Column("fixed_ip", String(64)),
    Column("mac_address", String(17)),
    Column("bridge", String(64)),
)
# One address per bridge, one MAC per host: the indexes make allocation atomic (NULLs are
# distinct, so user-mode guests, which all have slirp's one address and no bridge, share it).
PORT_INDEXES = (
    Index("ix_instances_bridge_fixed_ip", instances.c.bridge, instances.c.fixed_ip, unique=True),
    Index("ix_instances_mac_address", instances.c.mac_address, unique=True),
)
PORT_COLUMNS = ("network_name", "fixed_ip", "mac_address", "bridge")


# Columns the user changes after the boot (PUT /servers/{id}, metadata and tags APIs).
USER_COLUMNS = ("name", "metadata_json", "tags_json", "description")


def default_url(instances_path: str) -> str:
    return f"sqlite:///{Path(instances_path) / 'chute-compute.sqlite'}"


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    # WAL: API readers never wait for a build thread's write; busy_timeout rides out the
    # short writer-writer overlaps between build threads.
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


_IN_MEMORY_LOCK = threading.Lock()

# pg_advisory_xact_lock's key for creating the compute schema (any fixed 64-bit number).
SCHEMA_LOCK = 0x6368757465_636f  # "chute" "co"


def make_engine(url: str) -> Engine:
    """SQLite with its pragmas for threads of one process; PostgreSQL in UTC, each pooled
    connection checked before use (_check_alive: a server restart must not fail the next
    request)."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    engine = create_engine(url, connect_args={"options": "-c timezone=UTC"})
    event.listen(engine, "checkout", _check_alive)
    return engine


def _check_alive(dbapi_conn: Any, _record: Any, _proxy: Any) -> None:
    """A pooled PostgreSQL connection the server has closed is replaced before use, as
    pool_pre_ping's failed ping does (a new one, the rest of the pool marked stale: a
    restart closed them all). pool_pre_ping sent a query on every checkout, a third of the
    statements of a server create (measured: 46 of 196); a plain connection is checked
    without a round trip: its idle socket has nothing to read unless the server closed it (a
    restart sends its FATAL message, then the end of the stream). Over TLS the socket may
    hold records of a live session (a TLS 1.3 session ticket, from servers other than
    PostgreSQL's own, which sends none), so there an empty query asks the server, on
    libpq's level: no transaction is opened."""
    from psycopg import OperationalError, pq  # an optional extra's: on PostgreSQL only

    pgconn = dbapi_conn.pgconn
    if dbapi_conn.closed or pgconn.status != pq.ConnStatus.OK:
        raise InvalidatePoolError("the connection is closed")
    if pgconn.ssl_in_use:
        try:
            answered = pgconn.exec_(b";").status == pq.ExecStatus.EMPTY_QUERY
        except OperationalError:
            answered = False
        if not answered:
            raise InvalidatePoolError("the server did not answer")
        return
    poller = io_select.poll()
    poller.register(pgconn.socket, io_select.POLLIN)
    if poller.poll(0):
        raise InvalidatePoolError("the server closed the connection")


def reads(engine: Engine) -> Engine:
    """The engine for reads of one statement. On PostgreSQL in autocommit: psycopg sends a
    BEGIN before a transaction's first statement and SQLAlchemy a ROLLBACK when the
    connection goes back to its pool, two round trips around each SELECT that a single
    statement, which sees one snapshot anyway (READ COMMITTED), does not need. It shares the
    engine's pool. SQLite's driver begins transactions only before writes: the engine as is."""
    if engine.dialect.name != "postgresql":
        return engine
    return engine.execution_options(isolation_level="AUTOCOMMIT")


@contextmanager
def schema_transaction(engine: Engine) -> Iterator[Connection]:
    """A transaction to create tables in; on PostgreSQL it first takes the schema's advisory
    lock, so a second node starting at the same moment waits, then finds the tables there
    (CREATE TABLE's check-then-create is not atomic across sessions)."""
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(select(func.pg_advisory_xact_lock(SCHEMA_LOCK)))
        yield conn


@contextmanager
def serialized(engine: Engine, name: str) -> Iterator[None]:
    """Hold the lock `name` against every process using this database, across workers and
    nodes (a quota check and the rows it admits must not interleave with another's). On
    PostgreSQL a session advisory lock on a connection of its own, dropped by the server if
    this process dies; a SQLite database is one machine's, so an flock on a file beside it
    (one per open, so threads of one process exclude each other too)."""
    if engine.dialect.name == "postgresql":
        digest = hashlib.blake2b(f"chute-compute:{name}".encode(), digest_size=8).digest()
        key = int.from_bytes(digest, "big", signed=True)
        with engine.connect() as conn:
            conn = conn.execution_options(isolation_level="AUTOCOMMIT")
            conn.execute(select(func.pg_advisory_lock(key)))
            try:
                yield
            finally:
                try:
                    conn.execute(select(func.pg_advisory_unlock(key)))
                except Exception:
                    conn.invalidate()  # never pooled with the lock still held
                    raise
        return
    database = engine.url.database
    if not database or database == ":memory:":  # one process's own database
        with _IN_MEMORY_LOCK:
            yield
        return
    with open(f"{database}.lock", "a", encoding="utf-8") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock_file, fcntl.LOCK_UN)


def create_tables(engine: Engine, metadata: MetaData) -> None:
    with schema_transaction(engine) as conn:
        metadata.create_all(conn)


def _aware(value: datetime) -> datetime:
    # SQLite stores naive datetimes; everything we write is UTC.
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _maybe_aware(value: datetime | None) -> datetime | None:
    return None if value is None else _aware(value)


def _to_row(inst: Instance) -> dict[str, Any]:
    fault, transfer = inst.fault, inst.transfer
    return {
        "id": inst.id, "name": inst.name, "image_id": inst.image_id, "flavor_id": inst.flavor_id,
        "vm_state": inst.vm_state, "task_state": inst.task_state,
        "power_state": inst.power_state, "created": inst.created, "updated": inst.updated,
        "launched_at": inst.launched_at,
        "fault_code": fault.code if fault else None,
        "fault_message": fault.message if fault else None,
        "fault_created": fault.created if fault else None,
        "transfer_method": transfer.method if transfer else None,
        "transfer_primitive": transfer.primitive if transfer else None,
        "transfer_bytes": transfer.nbytes if transfer else None,
        "transfer_seconds": transfer.seconds if transfer else None,
        "build_attempts": inst.build_attempts,
        "key_name": inst.key_name, "key_data": inst.key_data, "user_data": inst.user_data,
        "metadata_json": json.dumps(inst.metadata), "tags_json": json.dumps(inst.tags),
        "availability_zone": inst.availability_zone, "config_drive": inst.config_drive,
        "description": inst.description, "admin_pass": inst.admin_pass,
        "project_id": inst.project_id, "user_id": inst.user_id, "networks": inst.networks,
        **_port_row(inst.port),
    }


def _port_row(port: Port | None) -> dict[str, Any]:
    if port is None:
        return dict.fromkeys(PORT_COLUMNS)
    return {"network_name": port.network, "fixed_ip": port.address, "mac_address": port.mac,
            "bridge": port.bridge}


def from_row(row: Any) -> Instance:
    """The instance of a row of `instances` (or of a join that has its columns)."""
    fault = None
    if row.fault_message is not None:
        fault = Fault(row.fault_code or 500, row.fault_message, _aware(row.fault_created))
    transfer = None
    if row.transfer_method is not None:
        transfer = Transfer(row.transfer_method, row.transfer_primitive,
                            row.transfer_bytes or 0, row.transfer_seconds or 0.0)
    port = None
    if row.fixed_ip is not None:
        port = Port(row.network_name, row.fixed_ip, row.mac_address, row.bridge)
    return Instance(
        id=row.id, name=row.name, image_id=row.image_id, flavor_id=row.flavor_id,
        vm_state=row.vm_state, task_state=row.task_state, power_state=row.power_state,
        created=_aware(row.created), updated=_aware(row.updated),
        launched_at=_maybe_aware(row.launched_at), fault=fault, transfer=transfer,
        build_attempts=row.build_attempts or 0, project_id=row.project_id, user_id=row.user_id,
        key_name=row.key_name, key_data=row.key_data, user_data=row.user_data,
        metadata=json.loads(row.metadata_json or "{}"), tags=json.loads(row.tags_json or "[]"),
        availability_zone=row.availability_zone, config_drive=bool(row.config_drive),
        description=row.description, admin_pass=row.admin_pass,
        networks=row.networks or "none", port=port,
    )


# The statements of every create, build and report, built once: building one of ~35 values
# cost more CPU than running it (py-spy on the compute API during a burst of creates); the
# columns a call sets are the keys of its parameters.
_INSERT = insert(instances)
_SAVE = update(instances).where(instances.c.id == bindparam("_id"))
_BY_ID = select(instances).where(instances.c.id == bindparam("_id"))


def save_state(conn: Connection, inst: Instance, with_port: bool = False) -> bool:
    """InstanceDB.save in the caller's transaction; `with_port` writes the port too (an
    IntegrityError if it is another instance's, as assign_port's)."""
    row = _to_row(inst)
    for column in ("id", *USER_COLUMNS, *(() if with_port else PORT_COLUMNS)):
        row.pop(column)
    row["_id"] = inst.id
    return conn.execute(_SAVE, row).rowcount == 1


def add_missing_columns(conn: Connection, table: Table) -> None:
    """ALTER TABLE ADD COLUMN for each column of `table` the existing database lacks (a
    database made by an older chute); every added column is nullable, so old rows stay valid."""
    present = {col["name"] for col in inspect(conn).get_columns(table.name)}
    for col in table.columns:
        if col.name not in present:
            kind = col.type.compile(dialect=conn.dialect)
            conn.exec_driver_sql(f'ALTER TABLE {table.name} ADD COLUMN "{col.name}" {kind}')


class InstanceDB:
    """CRUD on instances. Thread-safe: each call uses its own pooled connection."""

    def __init__(self, url: str) -> None:
        self.engine: Engine = make_engine(url)
        self.reads = reads(self.engine)
        with schema_transaction(self.engine) as conn:
            _metadata.create_all(conn)
            add_missing_columns(conn, instances)
            for index in PORT_INDEXES:
                index.create(conn, checkfirst=True)

    def create(self, inst: Instance, conn: Connection | None = None) -> None:
        """Insert the instance, in `conn`'s transaction if given."""
        if conn is not None:
            conn.execute(_INSERT, _to_row(inst))
            return
        with self.engine.begin() as own:
            own.execute(_INSERT, _to_row(inst))

    def get(self, instance_id: str) -> Instance | None:
        with self.reads.connect() as conn:
            row = conn.execute(_BY_ID, {"_id": instance_id}).first()
        return from_row(row) if row is not None else None

    def list(self, project_id: str | None = None) -> builtins.list[Instance]:
        """All instances, or those of `project_id`."""
        query = select(instances)
        if project_id is not None:
            query = query.where(instances.c.project_id == project_id)
        with self.reads.connect() as conn:
            rows = conn.execute(query.order_by(instances.c.created.desc(),
                                               instances.c.id)).all()
        return [from_row(row) for row in rows]

    def flavor_counts(self, project_id: str | None = None) -> dict[str, int]:
        """How many servers of each flavor there are (of `project_id`, or all): what quotas
        count, in one GROUP BY however many servers a project has."""
        query = select(instances.c.flavor_id, func.count()).group_by(instances.c.flavor_id)
        if project_id is not None:
            query = query.where(instances.c.project_id == project_id)
        with self.reads.connect() as conn:
            return {flavor_id: count for flavor_id, count in conn.execute(query)}

    def save(self, inst: Instance) -> bool:
        """Write the state of `inst` (every field but those the user edits through the API,
        see USER_COLUMNS); False if the instance was deleted meanwhile."""
        with self.engine.begin() as conn:
            return save_state(conn, inst)

    def save_user_fields(self, inst: Instance) -> bool:
        """Write what the user edits (name, metadata, tags, description) and `updated`; False
        if the instance is gone. Apart from save() so that a build thread, which holds an
        older copy of the instance for a whole image transfer, never writes back a rename or
        a metadata change made meanwhile."""
        row = _to_row(inst)
        values = {column: row[column] for column in (*USER_COLUMNS, "updated")}
        with self.engine.begin() as conn:
            result = conn.execute(update(instances).where(instances.c.id == inst.id)
                                  .values(**values))
        return result.rowcount == 1

    def assign_port(self, instance_id: str, port: Port) -> bool:
        """Record the instance's port; False if its address (on its bridge) or its MAC is
        another instance's: the unique indexes decide, so two builds never share one."""
        try:
            with self.engine.begin() as conn:
                conn.execute(update(instances).where(instances.c.id == instance_id)
                             .values(**_port_row(port)))
        except SQLIntegrityError:
            return False
        return True

    def release_port(self, instance_id: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(update(instances).where(instances.c.id == instance_id)
                         .values(**_port_row(None)))

    def used_addresses(self, bridge: str) -> set[str]:
        with self.reads.connect() as conn:
            rows = conn.execute(select(instances.c.fixed_ip)
                                .where(instances.c.bridge == bridge)).all()
        return {row.fixed_ip for row in rows}

    def delete(self, instance_id: str) -> bool:
        with self.engine.begin() as conn:
            result = conn.execute(delete(instances).where(instances.c.id == instance_id))
        return result.rowcount == 1

    def building(self) -> builtins.list[Instance]:
        return [inst for inst in self.list() if inst.vm_state == BUILDING]

    def image_ids(self) -> set[str]:
        with self.reads.connect() as conn:
            rows = conn.execute(select(instances.c.image_id).distinct()).all()
        return {row.image_id for row in rows}

    def close(self) -> None:
        self.engine.dispose()
