"""Migrations on a real SQLite file holding data from the revision before."""

from __future__ import annotations

import pytest
from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import inspect, text

from chute.images.db import Database, make_engine, migrate


def to_revision(engine, revision: str, down: bool = False) -> None:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", "chute.images:migrations")
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        (command.downgrade if down else command.upgrade)(cfg, revision)


def image_columns(engine) -> set[str]:
    return {column["name"] for column in inspect(engine).get_columns("images")}


def test_0002_renames_chute_blake3_and_clears_the_old_digests(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'reg.sqlite'}")
    to_revision(engine, "0001")
    with engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO images (id, name, status, visibility, protected, os_hidden, checksum, "
            "os_hash_algo, os_hash_value, chute_blake3, size, min_disk, min_ram, created_at, "
            "updated_at, deleted) VALUES ('img', 'old', 'active', 'shared', 0, 0, 'c', "
            "'sha512', 'v', :old, 4, 0, 0, '2026-01-01 00:00:00', '2026-01-01 00:00:00', 0)"),
            {"old": "ab" * 32})
        conn.execute(text("INSERT INTO image_properties (image_id, name, value) "
                          "VALUES ('img', 'hw_disk_bus', 'scsi')"))
    migrate(engine)
    assert "chute_blake3_blocks" in image_columns(engine)
    assert "chute_blake3" not in image_columns(engine)
    record = Database(engine).get("img")
    # A plain-BLAKE3 value is not a blake3-blocks digest: kept, it would fail every fetch.
    assert record.chute_blake3_blocks is None
    assert (record.name, record.status, record.os_hash_value, record.size) == (
        "old", "active", "v", 4)
    assert record.properties == {"hw_disk_bus": "scsi"}
    to_revision(engine, "0001", down=True)
    assert "chute_blake3" in image_columns(engine)
    assert "chute_blake3_blocks" not in image_columns(engine)


UPPER = "AAAAAAAA-0000-4000-8000-00000000000A"
MIXED = "Bbbbbbbb-0000-4000-8000-00000000000b"


def insert_image(conn, image_id: str, name: str, deleted: bool = False) -> None:
    conn.execute(text(
        "INSERT INTO images (id, name, status, visibility, protected, os_hidden, size, "
        "min_disk, min_ram, created_at, updated_at, deleted, version) VALUES (:id, :name, "
        "'active', 'shared', 0, 0, 4, 0, 0, '2026-01-01 00:00:00', '2026-01-01 00:00:00', "
        ":deleted, 0)"), {"id": image_id, "name": name, "deleted": deleted})


def test_0005_moves_upper_case_ids_to_lower_case_with_their_metadata(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'reg.sqlite'}")
    to_revision(engine, "0003")
    with engine.begin() as conn:
        insert_image(conn, UPPER, "upper")
        conn.execute(text("INSERT INTO image_properties (image_id, name, value) "
                          "VALUES (:id, 'hw_disk_bus', 'scsi')"), {"id": UPPER})
        conn.execute(text("INSERT INTO image_tags (image_id, value) VALUES (:id, 't')"),
                     {"id": UPPER})
        conn.execute(text("INSERT INTO image_locations (image_id, url, metadata, status, "
                          "created_at) VALUES (:id, 'file:///s/x', '{}', 'active', "
                          "'2026-01-01 00:00:00')"), {"id": UPPER})
        # A deleted upper-case row beside a live lower-case one: the live one keeps the id.
        insert_image(conn, MIXED, "old", deleted=True)
        insert_image(conn, MIXED.lower(), "live")
    migrate(engine)
    db = Database(engine)
    moved = db.get(UPPER.lower())
    assert (moved.name, moved.properties, moved.tags) == ("upper", {"hw_disk_bus": "scsi"}, ["t"])
    assert [loc.url for loc in moved.locations] == ["file:///s/x"]
    assert db.get(MIXED.lower()).name == "live"
    with engine.connect() as conn:
        ids = set(conn.execute(text("SELECT id FROM images")).scalars())
    assert ids == {UPPER.lower(), MIXED.lower()}


def test_0005_stops_on_two_live_images_that_differ_only_in_case(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'reg.sqlite'}")
    to_revision(engine, "0003")
    with engine.begin() as conn:
        insert_image(conn, MIXED, "one")
        insert_image(conn, MIXED.lower(), "two")
    with pytest.raises(RuntimeError, match=f"images {MIXED} and {MIXED.lower()} differ only"):
        migrate(engine)
    with engine.connect() as conn:  # nothing changed: the migration ran in one transaction
        assert set(conn.execute(text("SELECT id FROM images")).scalars()) == {MIXED,
                                                                              MIXED.lower()}
