"""Crashes and full disks: what a killed server or a full store leaves behind."""

from __future__ import annotations

import os
import subprocess
import time

import pytest

from tests.helpers.images import (
    assert_nothing_stored,
    create,
    open_upload,
    show,
    store_files,
    upload,
)

MiB = 1 << 20


def test_kill_9_mid_upload_then_restart_requeues_and_removes_temp_file(start_api):
    api = start_api()
    image = create(api)
    sock = open_upload(api, image["id"], 8 * MiB, os.urandom(2 * MiB), timeout=10)
    try:
        deadline = time.monotonic() + 10
        while show(api, image["id"])["status"] != "saving":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        while not any(n.endswith(".partial") for n in store_files(api)):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        api.kill()
    finally:
        sock.close()
    assert any(n.endswith(".partial") for n in store_files(api))  # the crash left it
    api.start()
    assert_nothing_stored(api, image["id"])
    assert "was left in 'saving' by a crash" in api.log_text()
    assert "removed temporary file" in api.log_text()
    assert upload(api, image["id"], b"after the crash").status_code == 204


@pytest.fixture
def tmpfs_dir(tmp_path):
    path = tmp_path / "small"
    path.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(path)],
                            capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs to fill up: {result.stderr.strip()}")
    yield path
    subprocess.run(["umount", "-l", str(path)], check=False)


@pytest.mark.backend_independent  # the store's filesystem fills up
def test_full_disk_is_413_and_nothing_left(start_api, tmpfs_dir):
    api = start_api(glance_store={"filesystem_store_datadir": str(tmpfs_dir / "images")})
    image = create(api)
    resp = upload(api, image["id"], os.urandom(12 * MiB))
    assert resp.status_code == 413
    assert "storage media is full" in resp.json()["message"]
    assert_nothing_stored(api, image["id"])
    assert upload(api, image["id"], os.urandom(MiB)).status_code == 204
