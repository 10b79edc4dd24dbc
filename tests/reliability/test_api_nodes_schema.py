"""API nodes starting at the same moment against one empty PostgreSQL database.

Each node creates or migrates the schema before it serves; CREATE TABLE's check-then-create is
not atomic across sessions, so without the advisory locks of chute.images.db.migrate and
chute.compute.db.schema_transaction the second node fails on a duplicate catalog entry. Several
processes are released at once by a barrier, several rounds, each on a fresh database.
"""

from __future__ import annotations

import multiprocessing
import traceback
from collections.abc import Callable
from typing import Any

from sqlalchemy import create_engine, text

from tests.helpers.postgres import Cluster

NODES = 3
ROUNDS = 2


def _migrate_images(url: str) -> None:
    from chute.images.db import make_engine, migrate

    engine = make_engine(url)
    migrate(engine)
    engine.dispose()


def _create_compute(url: str) -> None:
    from chute.compute import flavors
    from chute.compute.db import InstanceDB
    from chute.compute.instance_actions import InstanceActions
    from chute.compute.keypairs import Keypairs

    state = InstanceDB(url)
    Keypairs(state.engine)
    flavors.Catalog(state.engine)
    InstanceActions(state.engine)
    state.close()


def _node(target: Callable[[str], None], url: str, barrier: Any, errors: Any) -> None:
    try:
        barrier.wait(60)
        target(url)
    except BaseException:
        errors.put(traceback.format_exc())


def _start_at_once(target: Callable[[str], None], url: str) -> list[str]:
    """Run `target(url)` in NODES processes released together; the tracebacks of failures."""
    ctx = multiprocessing.get_context("spawn")
    barrier, errors = ctx.Barrier(NODES), ctx.Queue()
    procs = [ctx.Process(target=_node, args=(target, url, barrier, errors))
             for _ in range(NODES)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(120)
    failed = []
    while not errors.empty():
        failed.append(errors.get())
    assert [proc.exitcode for proc in procs] == [0] * NODES
    return failed


def _scalar(url: str, sql: str) -> Any:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(text(sql)).scalar_one()
    finally:
        engine.dispose()


def test_image_nodes_migrating_one_empty_database_at_once_all_start(postgres: Cluster) -> None:
    for _ in range(ROUNDS):
        url = postgres.fresh_database("migrate")
        assert _start_at_once(_migrate_images, url) == []
        assert _scalar(url, "SELECT count(*) FROM alembic_version") == 1
        assert _scalar(url, "SELECT count(*) FROM images") == 0


def test_compute_nodes_creating_one_empty_schema_at_once_all_start(postgres: Cluster) -> None:
    for _ in range(ROUNDS):
        url = postgres.fresh_database("compute")
        assert _start_at_once(_create_compute, url) == []
        assert _scalar(url, "SELECT count(*) FROM information_schema.tables WHERE "
                            "table_name IN ('instances', 'keypairs', 'flavors', "
                            "'instance_actions')") == 4
