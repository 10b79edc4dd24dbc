"""What happened to a server, when, and at whose request (Nova's os-instance-actions).

One row per action (create, delete, stop, ...) with the request id that asked for it, who asked,
when it started, and its one event: when the work finished and whether it succeeded (Nova
records several events per action; chute's agent does each action in one step, so one event
named as Nova names the compute-side step). Rows outlive their server: Nova shows the actions
of a deleted server from 2.21.

Recording, for any code that acts on a server (server actions included):

    actions.start(instance_id, "stop")            # in the API thread: takes its request id
    ... the work ...
    actions.finish(instance_id, "stop")           # or finish(..., error="what failed")
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import (
    Column,
    DateTime,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    bindparam,
    insert,
    select,
)
from sqlalchemy import delete as sql_delete
from sqlalchemy import update as sql_update
from sqlalchemy.engine import Connection, Engine

from chute.compute.db import add_missing_columns, schema_transaction
from chute.compute.instance import utcnow
from chute.errors import ComputeNotFound
from chute.httpapi import request_id_var

_metadata = MetaData()
actions = Table(
    "instance_actions", _metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("instance_id", String(36), nullable=False, index=True),
    Column("action", String(255), nullable=False),
    Column("request_id", String(255), nullable=False),
    Column("user_id", String(255)),
    Column("project_id", String(255)),
    Column("start_time", DateTime, nullable=False),
    Column("finish_time", DateTime),
    Column("result", String(16)),  # Success | Error, once finished
    Column("message", Text),
    Column("details", Text),  # what went wrong (a failed try of a build names its host)
)

# Nova's event names for the compute-side step of each action.
EVENTS = {"create": "compute__do_build_and_run_instance",
          "delete": "compute_terminate_instance", "stop": "compute_stop_instance",
          "start": "compute_start_instance", "reboot": "compute_reboot_instance"}


@dataclass(frozen=True)
class Action:
    instance_id: str
    action: str
    request_id: str
    user_id: str
    project_id: str
    start_time: datetime
    finish_time: datetime | None
    result: str | None
    message: str | None
    details: str | None = None

    @property
    def event(self) -> str:
        return EVENTS.get(self.action, f"compute_{self.action}")

    @property
    def updated(self) -> datetime:
        return self.finish_time or self.start_time


def _aware(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


_STARTED = insert(actions)
# finish_each's statements, built once (each agent report that ends a build runs them).
_OPEN_OF_NAMES = (select(actions.c.id, actions.c.action)
                  .where(actions.c.instance_id == bindparam("_id"),
                         actions.c.action.in_(bindparam("names", expanding=True)),
                         actions.c.finish_time.is_(None))
                  .order_by(actions.c.id.desc()))
_SUCCEEDED = (sql_update(actions).where(actions.c.id.in_(bindparam("ids", expanding=True)))
              .values(finish_time=bindparam("now"), result="Success", message=None,
                      details=None))


class InstanceActions:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        with schema_transaction(engine) as conn:
            _metadata.create_all(conn)
            add_missing_columns(conn, actions)

    def start(self, instance_id: str, action: str, *, request_id: str | None = None,
              user_id: str = "", project_id: str = "", conn: Connection | None = None) -> None:
        """Record that `action` began now, by the request being served (its id) by default;
        in `conn`'s transaction if given."""
        if conn is None:
            with self.engine.begin() as own:
                self.start(instance_id, action, request_id=request_id, user_id=user_id,
                           project_id=project_id, conn=own)
            return
        conn.execute(_STARTED, {"instance_id": instance_id, "action": action,
                                "request_id": request_id or request_id_var.get(),
                                "user_id": user_id, "project_id": project_id,
                                "start_time": utcnow()})

    def finish(self, instance_id: str, action: str, error: str | None = None,
               conn: Connection | None = None) -> None:
        """Close the newest unfinished `action` of the instance: Success, or Error with
        `error` as what went wrong. Nothing to close is not an error (e.g. a build resumed
        after a restart that had already been closed). In `conn`'s transaction if given."""
        if conn is None:
            with self.engine.begin() as own:
                self.finish(instance_id, action, error, own)
            return
        row = conn.execute(
            select(actions.c.id)
            .where(actions.c.instance_id == instance_id, actions.c.action == action,
                   actions.c.finish_time.is_(None))
            .order_by(actions.c.id.desc())).first()
        if row is None:
            return
        conn.execute(sql_update(actions).where(actions.c.id == row.id).values(
            finish_time=utcnow(), result="Error" if error else "Success",
            message="Error" if error else None, details=error))

    def finish_each(self, instance_id: str, names: Sequence[str],
                    conn: Connection | None = None) -> None:
        """finish() each of `names` with Success, in one SELECT and at most one UPDATE: an
        agent's report that ends a build or an action closes several names at once. In
        `conn`'s transaction if given (the report's own)."""
        if conn is None:
            with self.engine.begin() as own:
                self.finish_each(instance_id, names, own)
            return
        rows = conn.execute(_OPEN_OF_NAMES, {"_id": instance_id, "names": list(names)}).all()
        newest = {row.action: row.id for row in reversed(rows)}  # the last one wins
        if newest:
            conn.execute(_SUCCEEDED, {"ids": list(newest.values()), "now": utcnow()})

    def discard(self, instance_id: str, action: str) -> None:
        """Forget the newest unfinished `action`: it was refused before anything was done
        (Nova records an action only once its state check passed)."""
        with self.engine.begin() as conn:
            row = conn.execute(
                select(actions.c.id)
                .where(actions.c.instance_id == instance_id, actions.c.action == action,
                       actions.c.finish_time.is_(None))
                .order_by(actions.c.id.desc())).first()
            if row is not None:
                conn.execute(sql_delete(actions).where(actions.c.id == row.id))

    def list(self, instance_id: str) -> list[Action]:
        """Newest first, as Nova lists them."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(actions).where(actions.c.instance_id == instance_id)
                                .order_by(actions.c.id.desc())).all()
        return [Action(r.instance_id, r.action, r.request_id, r.user_id or "",
                       r.project_id or "", _aware(r.start_time) or utcnow(),
                       _aware(r.finish_time), r.result, r.message, r.details) for r in rows]

    def get(self, instance_id: str, request_id: str) -> Action:
        for action in self.list(instance_id):
            if action.request_id == request_id:
                return action
        raise ComputeNotFound(f"Action for request_id {request_id} on instance "
                              f"{instance_id} not found")
