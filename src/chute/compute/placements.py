"""What the scheduler decided for each server, kept in the compute API's database so that
`chute-compute-api explain SERVER` can say, later and from any node, why the server went where
it did and why the other hosts did not get it.

`RecordingScheduler` wraps the pure scheduler where the compute API makes it: before each
selection it gives the hosts the availability zone their aggregates set and the request the
filesystems holding the image (for the image weigher), and after it records the selection,
one record per try (a reschedule adds one).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

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
from sqlalchemy.engine import Engine

from chute.compute.aggregates import Aggregates
from chute.compute.db import create_tables
from chute.compute.host_state import HostState, RequestSpec, Scheduler, Selection
from chute.compute.scheduler.explain import record, render
from chute.errors import ComputeNotFound

_metadata = MetaData()

placement_records = Table(
    "placement_records", _metadata,
    Column("instance_id", String(36), primary_key=True),
    Column("attempt", Integer, primary_key=True),
    Column("created_at", DateTime, nullable=False),
    Column("record_json", Text, nullable=False),
)


# add()'s statements, built once (each placement runs them).
_FORGET_TRY = placement_records.delete().where(
    placement_records.c.instance_id == bindparam("_id"),
    placement_records.c.attempt == bindparam("_attempt"))
_RECORD = insert(placement_records)


class PlacementLog:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        create_tables(engine, _metadata)

    def add(self, spec: RequestSpec, selection: Selection) -> None:
        doc = json.dumps(record(spec, selection))
        attempt = len(spec.ignore_hosts) + 1  # one more host is tried on each attempt
        with self.engine.begin() as conn:
            conn.execute(_FORGET_TRY, {"_id": spec.instance_id, "_attempt": attempt})
            conn.execute(_RECORD, {"instance_id": spec.instance_id, "attempt": attempt,
                                   "record_json": doc,
                                   "created_at": datetime.now(UTC).replace(tzinfo=None)})

    def records(self, instance_id: str) -> list[tuple[datetime, dict[str, Any]]]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(placement_records)
                                .where(placement_records.c.instance_id == instance_id)
                                .order_by(placement_records.c.attempt)).all()
        return [(row.created_at, json.loads(row.record_json)) for row in rows]

    def explain(self, instance_id: str, host: str | None) -> str:
        """Every try's ranking and refusals, oldest first; `host` is where the server is."""
        found = self.records(instance_id)
        if not found:
            raise ComputeNotFound(f"No placement of server {instance_id} was recorded.")
        parts = [f"Server {instance_id}: on host {host or '(none)'}\n"]
        for number, (when, placement) in enumerate(found, 1):
            last = number == len(found)
            chosen = host if last else _tried_next(found, number)
            parts.append(f"\nTry {number}, scheduled at {when:%Y-%m-%d %H:%M:%S} UTC:\n")
            parts.append(render(placement, chosen))
        return "".join(parts)


def _tried_next(found: list[tuple[datetime, dict[str, Any]]], number: int) -> str | None:
    """The host try `number` went to: the one the next try ignores that this one did not."""
    before = set(found[number - 1][1]["request"]["ignore_hosts"])
    after = set(found[number][1]["request"]["ignore_hosts"])
    new = sorted(after - before)
    return new[0] if new else None


class RecordingScheduler:
    def __init__(self, inner: Scheduler, log: PlacementLog, aggregates: Aggregates,
                 filesystems: Callable[[str], frozenset[str]] | None = None) -> None:
        self.inner = inner
        self.log = log
        self.aggregates = aggregates
        self.filesystems = filesystems

    def select(self, spec: RequestSpec, hosts: Sequence[HostState]) -> Selection:
        if self.filesystems is not None and not spec.image_filesystem_ids:
            spec = replace(spec, image_filesystem_ids=self.filesystems(spec.image_id))
        selection = self.inner.select(spec, self.aggregates.zoned(hosts))
        self.log.add(spec, selection)
        return selection
