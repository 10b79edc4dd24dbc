"""The registry database on a real SQLite file: migrations, WAL, compare-and-swap."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text

from chute.images.db import QUERY_CACHE_SIZE, Database, ListQuery, make_engine, migrate, utcnow
from chute.images.models import METADATA


def new_db(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'reg.sqlite'}")
    migrate(engine)
    return Database(engine)


def add_image(db, image_id, status="queued"):
    now = utcnow()
    db.create({"id": image_id, "name": None, "status": status, "visibility": "shared",
               "protected": False, "os_hidden": False, "min_disk": 0, "min_ram": 0,
               "disk_format": "raw", "container_format": "bare", "owner": None,
               "created_at": now, "updated_at": now, "deleted": False}, {}, [])


def test_migrations_match_the_models_and_rerun_cleanly(tmp_path):
    db = new_db(tmp_path)
    migrate(db.engine)  # a second start finds nothing to do
    with db.engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), METADATA) == []
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA busy_timeout")).scalar() == 30000


def test_status_changes_are_compare_and_swap(tmp_path):
    db = new_db(tmp_path)
    add_image(db, "a")
    assert db.cas_status("a", "queued", "saving") is True
    assert db.cas_status("a", "queued", "saving") is False  # the loser of a race
    assert db.get("a").status == "saving"
    assert db.reset_saving(only=["other"]) == []
    assert db.reset_saving() == ["a"]
    assert db.get("a").status == "queued"


def test_soft_delete_keeps_the_id_reserved(tmp_path):
    db = new_db(tmp_path)
    add_image(db, "b")
    db.soft_delete("b")
    assert db.get("b") is None
    assert db.get("b", include_deleted=True).status == "deleted"
    assert db.exists_any("b")


def test_differently_filtered_lists_keep_a_bounded_number_of_compiled_statements(tmp_path):
    """Each shape of list query (how many property and tag filters) compiles a statement of
    its own, tens of KiB kept in the engine's cache: a service answering many kinds of lists
    must not keep them all."""
    db = new_db(tmp_path)
    add_image(db, "c")
    shapes = [(props, tags) for props in range(1, 13) for tags in range(9)]
    assert len(shapes) > QUERY_CACHE_SIZE * 3 // 2
    for props, tags in shapes:
        query = ListQuery(properties={f"p{n}": "v" for n in range(props)},
                          tags=[f"t{n}" for n in range(tags)])
        assert db.list_images(query) == []
    assert [image.id for image in db.list_images(ListQuery())] == ["c"]
    # SQLAlchemy's LRU cache prunes itself back to its size once half as many again are in it.
    assert len(db.engine._compiled_cache) <= QUERY_CACHE_SIZE * 3 // 2
