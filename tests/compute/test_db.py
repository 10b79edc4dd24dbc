"""The compute database's pooled PostgreSQL connections survive a server restart: one the
server closed is replaced before use (checked by polling its socket, no round trip; over TLS
by an empty query), so the first request after a restart does not fail."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

from chute.compute.db import InstanceDB
from chute.compute.instance import Instance
from tests.helpers.postgres import Cluster


@pytest.fixture(params=[False, True], ids=["plain", "tls"])
def tls(request: pytest.FixtureRequest) -> bool:
    return bool(request.param)


@pytest.fixture
def own_postgres(tls: bool, tmp_path: Path) -> Iterator[Cluster]:
    """A cluster of this test's own (restarting the session's would cut other tests off),
    without TLS and with it."""
    cluster = Cluster.create(tmp_path / "postgres")
    if tls:
        cluster.enable_tls()
        cluster.restart()
    yield cluster
    cluster.stop()


def test_reads_and_writes_go_on_after_a_postgresql_restart(own_postgres: Cluster,
                                                            tls: bool) -> None:
    url = own_postgres.fresh_database("restart")
    db = InstanceDB(url)
    with db.engine.connect() as conn:
        assert conn.connection.dbapi_connection.pgconn.ssl_in_use is tls  # type: ignore[union-attr]
    unchecked = create_engine(url)  # what a pool without any check would do
    inst = Instance(id=str(uuid.uuid4()), name="survivor", image_id="image", flavor_id="1")
    db.create(inst)
    with unchecked.connect() as conn:
        conn.execute(text("SELECT 1"))
    with ExitStack() as held:  # the pool keeps three connections, all idle after this
        for _ in range(3):
            held.enter_context(db.engine.connect()).execute(text("SELECT 1"))
    assert db.get(inst.id) is not None

    own_postgres.restart()

    with pytest.raises(OperationalError), unchecked.connect() as conn:
        conn.execute(text("SELECT 1"))  # the restart did close the pooled connections
    with ExitStack() as held:  # every stale one is replaced, however many are taken
        for _ in range(3):
            conn = held.enter_context(db.engine.connect())
            assert conn.execute(text("SELECT 1")).scalar() == 1
    found = db.get(inst.id)
    assert found is not None and found.name == "survivor"
    found.vm_state = "active"
    assert db.save(found)
    assert [i.vm_state for i in db.list()] == ["active"]
    unchecked.dispose()
    db.close()
