"""The periodic image-cache cleanup: unused bases go, bases of live servers stay."""

import time

import requests

from tests.helpers.digests import base_name
from tests.helpers.disks import make_qcow2
from tests.helpers.images import upload_image
from tests.helpers.servers import boot_and_wait


def test_cleanup_removes_only_unused_bases(shared_api, start_compute, tmp_path):
    compute = start_compute(shared_api, image_cache={
        "manager_interval": 1, "remove_unused_original_minimum_age_seconds": 0})
    kept = upload_image(shared_api, make_qcow2(tmp_path / "kept.qcow2", "16M", data_mb=1),
                        disk_format="qcow2")
    dropped = upload_image(shared_api, make_qcow2(tmp_path / "dropped.qcow2", "16M", data_mb=1),
                           disk_format="qcow2")
    keep_server = boot_and_wait(compute, kept["id"])
    drop_server = boot_and_wait(compute, dropped["id"])
    assert keep_server["status"] == drop_server["status"] == "ACTIVE"
    base_dir = compute.instances_path / "_base"
    assert requests.delete(f"{compute.url}/v2.1/servers/{drop_server['id']}").status_code == 204

    deadline = time.monotonic() + 15
    while (base_dir / base_name(dropped["id"])).exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not (base_dir / base_name(dropped["id"])).exists()
    time.sleep(1.5)  # at least one more pass
    assert (base_dir / base_name(kept["id"])).exists()
    assert "Image cache cleanup removed 1 base(s)" in compute.log_text()
