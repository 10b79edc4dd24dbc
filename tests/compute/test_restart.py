"""chute-compute dies mid-build: nothing half-fetched is ever used, nothing stays in BUILD."""

import sqlite3
import time
import uuid

from tests.helpers.digests import base_name, sha512_file
from tests.helpers.disks import make_raw
from tests.helpers.images import upload_image
from tests.helpers.servers import boot, wait_built


def test_kill_during_fetch_then_restart(shared_api, start_compute, tmp_path):
    api = shared_api
    # HTTP only, so the fetch of 128 MiB takes long enough to be caught in the middle.
    compute = start_compute(api, glance={"allowed_direct_url_schemes": ""})
    image = upload_image(api, make_raw(tmp_path / "big.raw", size_mb=128), disk_format="raw")
    base_dir = compute.instances_path / "_base"
    server = boot(compute, image["id"])

    seen_part = None
    deadline = time.monotonic() + 30
    while seen_part is None and time.monotonic() < deadline:
        parts = [p for p in base_dir.glob("*.part") if p.stat().st_size > 0]
        seen_part = parts[0] if parts else None
        time.sleep(0.005)
    compute.kill()
    assert seen_part is not None, "the fetch was never caught in progress"
    part_size = seen_part.stat().st_size if seen_part.exists() else None
    assert part_size is None or part_size < image["size"]
    assert not (base_dir / base_name(image["id"])).exists()

    compute.restart()
    final = wait_built(compute, server["id"])
    assert final["status"] in ("ACTIVE", "ERROR"), final
    assert "resuming a build interrupted by a restart" in compute.log_text()
    assert final["status"] == "ACTIVE", final.get("fault")
    base = base_dir / base_name(image["id"])
    assert sha512_file(base) == image["os_hash_value"]
    assert not list(base_dir.glob("*.part"))

    compute.restart()  # a finished server is state, kept across restarts as it was
    again = wait_built(compute, server["id"])
    assert (again["status"], again["chute:image_transfer"]) == \
        ("ACTIVE", final["chute:image_transfer"])


def test_builds_interrupted_too_often_end_in_error(start_compute):
    compute = start_compute()
    compute.stop()
    stale = compute.instances_path / "_base" / ("0" * 40 + ".part")
    stale.write_bytes(b"half an image")
    server_id = str(uuid.uuid4())
    db = sqlite3.connect(compute.instances_path / "chute-compute.sqlite")
    with db:
        db.execute(
            "INSERT INTO instances (id, name, image_id, flavor_id, vm_state, task_state, "
            "power_state, created, updated, build_attempts) VALUES "
            "(?, 'vm', 'img', '1', 'building', 'spawning', 0, '2026-01-01 00:00:00', "
            "'2026-01-01 00:00:00', 3)", (server_id,))
    db.close()
    compute.restart()
    server = wait_built(compute, server_id)
    assert server["status"] == "ERROR"
    assert server["fault"]["message"] == "build interrupted by a restart"
    assert not stale.exists()
    assert f"Removing stale work file {stale.name}" in compute.log_text()
