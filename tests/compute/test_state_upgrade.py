"""A state database written by an older chute-compute (the instances table before the boot
fields) is upgraded at start: the missing columns are added and its servers still show."""

import sqlite3

from tests.helpers.servers import nova
from tests.helpers.services import prepare_compute

OLD_SCHEMA = """CREATE TABLE instances (
    id VARCHAR(36) NOT NULL PRIMARY KEY, name VARCHAR(255) NOT NULL,
    image_id VARCHAR(255) NOT NULL, flavor_id VARCHAR(36) NOT NULL,
    vm_state VARCHAR(16) NOT NULL, task_state VARCHAR(32), power_state INTEGER NOT NULL,
    created DATETIME NOT NULL, updated DATETIME NOT NULL, launched_at DATETIME,
    fault_code INTEGER, fault_message TEXT, fault_created DATETIME,
    transfer_method VARCHAR(16), transfer_primitive VARCHAR(32), transfer_bytes INTEGER,
    transfer_seconds FLOAT, build_attempts INTEGER NOT NULL)"""


def test_an_old_database_gains_the_new_columns(tmp_path):
    compute = prepare_compute(tmp_path)
    compute.instances_path.mkdir()
    db = sqlite3.connect(compute.instances_path / "chute-compute.sqlite")
    db.execute(OLD_SCHEMA)
    db.execute("INSERT INTO instances VALUES ('old-1', 'old', 'img', '1', 'error', NULL, 0, "
               "'2026-01-01 00:00:00', '2026-01-01 00:00:00', NULL, 500, 'gone', "
               "'2026-01-01 00:00:00', NULL, NULL, NULL, NULL, 3)")
    db.commit()
    db.close()
    compute.start()
    try:
        shown = nova(compute, "GET", "/servers/old-1").json()["server"]
        assert (shown["name"], shown["status"], shown["metadata"], shown["tags"]) == (
            "old", "ERROR", {}, [])
        renamed = nova(compute, "PUT", "/servers/old-1", json={"server": {"name": "new"}})
        assert renamed.json()["server"]["name"] == "new"
    finally:
        compute.kill()
    columns = {row[1] for row in sqlite3.connect(
        compute.instances_path / "chute-compute.sqlite").execute("PRAGMA table_info(instances)")}
    assert {"key_name", "user_data", "metadata_json", "tags_json", "availability_zone",
            "config_drive", "description"} <= columns
