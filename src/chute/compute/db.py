"""The agent's own state: instances in SQLite (WAL) so servers survive a restart.

Only this module knows SQL. The schema is one small table created on first use; the agent's
state is local to its host, so there is no migration history to carry (the image service's
database, shared by several nodes, is the one that needs Alembic).
"""

from __future__ import annotations

import builtins
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Column,
    DateTime,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    delete,
    event,
    insert,
    inspect,
    select,
    text,
    update,
)
from sqlalchemy.engine import Engine

from chute.compute.instance import BUILDING, Fault, Instance, Transfer

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
    Column("transfer_bytes", Integer),
    Column("transfer_seconds", Float),
    Column("build_attempts", Integer, nullable=False, default=0),
    Column("project_id", String(255)),
    Column("user_id", String(255)),
)


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
        "project_id": inst.project_id, "user_id": inst.user_id,
    }


def _from_row(row: Any) -> Instance:
    fault = None
    if row.fault_message is not None:
        fault = Fault(row.fault_code or 500, row.fault_message, _aware(row.fault_created))
    transfer = None
    if row.transfer_method is not None:
        transfer = Transfer(row.transfer_method, row.transfer_primitive,
                            row.transfer_bytes or 0, row.transfer_seconds or 0.0)
    return Instance(
        id=row.id, name=row.name, image_id=row.image_id, flavor_id=row.flavor_id,
        vm_state=row.vm_state, task_state=row.task_state, power_state=row.power_state,
        created=_aware(row.created), updated=_aware(row.updated),
        launched_at=_maybe_aware(row.launched_at), fault=fault, transfer=transfer,
        build_attempts=row.build_attempts or 0, project_id=row.project_id, user_id=row.user_id,
    )


def _add_new_columns(engine: Engine) -> None:
    """Columns added since a state database was created (ALTER TABLE ADD COLUMN: all are
    nullable or have a default); create_all makes only missing tables."""
    present = {column["name"] for column in inspect(engine).get_columns("instances")}
    with engine.begin() as conn:
        for column in instances.columns:
            if column.name not in present:
                kind = column.type.compile(dialect=engine.dialect)
                conn.execute(text(f'ALTER TABLE instances ADD COLUMN "{column.name}" {kind}'))


class InstanceDB:
    """CRUD on instances. Thread-safe: each call uses its own pooled connection."""

    def __init__(self, url: str) -> None:
        self.engine: Engine = create_engine(url, connect_args={"check_same_thread": False})
        if self.engine.dialect.name == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
        _metadata.create_all(self.engine)
        _add_new_columns(self.engine)

    def create(self, inst: Instance) -> None:
        with self.engine.begin() as conn:
            conn.execute(insert(instances).values(**_to_row(inst)))

    def get(self, instance_id: str) -> Instance | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(instances).where(instances.c.id == instance_id)).first()
        return _from_row(row) if row is not None else None

    def list(self, project_id: str | None = None) -> builtins.list[Instance]:
        """All instances, or those of `project_id`."""
        query = select(instances)
        if project_id is not None:
            query = query.where(instances.c.project_id == project_id)
        with self.engine.connect() as conn:
            rows = conn.execute(query.order_by(instances.c.created.desc(),
                                               instances.c.id)).all()
        return [_from_row(row) for row in rows]

    def save(self, inst: Instance) -> bool:
        """Write every field of `inst`; False if the instance was deleted meanwhile."""
        row = _to_row(inst)
        row.pop("id")
        with self.engine.begin() as conn:
            result = conn.execute(update(instances).where(instances.c.id == inst.id)
                                  .values(**row))
        return result.rowcount == 1

    def delete(self, instance_id: str) -> bool:
        with self.engine.begin() as conn:
            result = conn.execute(delete(instances).where(instances.c.id == instance_id))
        return result.rowcount == 1

    def building(self) -> builtins.list[Instance]:
        return [inst for inst in self.list() if inst.vm_state == BUILDING]

    def image_ids(self) -> set[str]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(instances.c.image_id).distinct()).all()
        return {row.image_id for row in rows}

    def close(self) -> None:
        self.engine.dispose()
