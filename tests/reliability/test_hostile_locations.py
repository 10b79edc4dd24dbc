"""Hostile locations (issue 5 item 7): each refused for the direct path with the reason logged,
and nothing outside the mountpoint ever opened.

Real boots get their locations from the server: the test rewrites the image's location rows in
chute-api's database (as a hostile or broken registry would serve them) and the compute config.
URL shapes the server never produces go straight to the path-translation function
(chute.compute.fetch.shared_fs). Every target a hostile location aims at is watched with inotify
(opentrap): the kernel, not a log line, shows that no process opened it. The outside targets
hold the image's exact bytes, so a containment bug would not be caught by the hash check - only
by the trap.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import stat
import subprocess
import time
from pathlib import Path

import pytest
import requests

from chute.compute.fetch import shared_fs
from chute.errors import DirectPathUnavailable
from tests.helpers.images import JSON, show, upload_image
from tests.helpers.opentrap import OpenTrap
from tests.helpers.servers import boot_and_wait

FS_ID = "shared-fs-1"
DATA = hashlib.shake_256(b"hostile-locations").digest(1 << 20)


def set_locations(api, image_id: str, locations: list[tuple[str, object]]) -> None:
    """Replace the image's location rows, in order, as the registry's database holds them."""
    db_path = Path(api.datadir).parent / "chute-api.sqlite"  # chute.images.app.database_url
    with sqlite3.connect(db_path, timeout=30) as conn:
        (created,) = conn.execute("SELECT created_at FROM image_locations WHERE image_id = ?",
                                  (image_id,)).fetchone()
        conn.execute("DELETE FROM image_locations WHERE image_id = ?", (image_id,))
        conn.executemany(
            "INSERT INTO image_locations (image_id, url, metadata, status, created_at) "
            "VALUES (?, ?, ?, 'active', ?)",
            [(image_id, url, json.dumps(meta), created) for url, meta in locations])


def mknod_zero(path: Path) -> bool:
    """A character device like /dev/zero (1,5); False where mknod is not permitted."""
    try:
        os.mknod(path, stat.S_IFCHR | 0o600, os.makedev(1, 5))
        return True
    except PermissionError:
        return False


@pytest.fixture
def trap():
    watch = OpenTrap()
    yield watch
    watch.close()


def test_the_trap_sees_opens_by_other_processes(tmp_path, trap):
    """The proof device itself must be able to fail."""
    (tmp_path / "f").write_bytes(b"x")
    trap.watch(tmp_path)
    fifo = trap.fifo(tmp_path / "p")
    assert trap.opened() == []
    os.stat(tmp_path / "f"), os.path.realpath(tmp_path / "f"), os.lstat(fifo)
    assert trap.opened() == []  # checks by path are not opens
    subprocess.run(["cat", str(tmp_path / "f")], check=True, capture_output=True)
    assert trap.opened() == [str(tmp_path / "f")]
    reader = subprocess.Popen(["cat", str(fifo)], stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 5
    seen: list[str] = []
    while not seen and time.monotonic() < deadline:
        seen = trap.opened()
        time.sleep(0.02)
    reader.wait(timeout=5)
    assert any("reader blocked in open" in item for item in seen), seen


# reason code -> words of the operator's log line
WHY = {"dot_dot": "has a '.' or '..' segment",
       "outside_mountpoint": "is not under the image service's mountpoint",
       "symlink_escape": "outside the mountpoint",
       "not_regular_file": " is a",
       "bad_url": "names another host"}


def test_hostile_locations_from_the_server_are_refused(start_api, start_compute, trap,
                                                       capsys):
    api = start_api()
    root, store = Path(api.root), Path(api.root) / "store"
    images = store / "images"
    image = upload_image(api, DATA, name="loc")
    good = f"file://{images / image['id']}"
    meta = {"id": FS_ID, "mountpoint": str(store)}

    outside = root / "outside"  # beside the mountpoint; every file holds the image's bytes
    outside.mkdir()
    (outside / "trap").write_bytes(DATA)
    sibling = root / "storeroom" / "images"  # `store` is a string prefix of `storeroom`
    sibling.mkdir(parents=True)
    (sibling / image["id"]).write_bytes(DATA)
    trap.watch(outside)
    trap.watch(sibling)
    devices = mknod_zero(outside / "zero") and mknod_zero(images / "dev")
    (images / "link-out").symlink_to(outside / "trap")
    (images / "dirlink").symlink_to(outside)
    (images / "adir").mkdir()
    trap.watch(images / "adir")
    trap.fifo(images / "fifo")

    hostile = [
        (f"file://{images}/../../outside/trap", meta, "dot_dot"),
        (f"file://{images}/%2e%2e/%2E%2E/outside/trap", meta, "dot_dot"),
        (f"file://{images}/..%2f..%2Foutside%2ftrap", meta, "dot_dot"),
        (f"file://{store}//images//..//..//outside//trap", meta, "dot_dot"),
        (f"file:///{root}//outside//trap", meta, "outside_mountpoint"),
        (f"file://{images}/link-out", meta, "symlink_escape"),
        (f"file://{images}/dirlink/trap", meta, "symlink_escape"),
        (f"file://{images}/fifo", meta, "not_regular_file"),
        (f"file://{images}/adir", meta, "not_regular_file"),
        (f"file://{store}", meta, "outside_mountpoint"),
        (f"file://{sibling / image['id']}", meta, "outside_mountpoint"),
        (f"file://{root}/storeroom//images/{image['id']}",
         {"id": FS_ID, "mountpoint": f"{store}/"}, "outside_mountpoint"),
        (f"file://{store}//images/{image['id']}", {"id": FS_ID, "mountpoint": f"{root}/sto"},
         "outside_mountpoint"),
        (f"file://otherhost{images / image['id']}", meta, "bad_url"),
    ]
    if devices:
        (images / "link-dev").symlink_to(outside / "zero")
        trap.watch(images / "dev")
        hostile += [(f"file://{images}/dev", meta, "not_regular_file"),
                    (f"file://{images}/link-dev", meta, "symlink_escape")]
    assert len({url for url, _, _ in hostile} | {good}) == len(hostile) + 1  # no de-duplication
    set_locations(api, image["id"], [(url, m) for url, m, _ in hostile] + [(good, meta)])
    served = show(api, image["id"])["locations"]
    assert [loc["url"] for loc in served] == [url for url, _, _ in hostile] + [good]

    compute = start_compute(api)
    server = boot_and_wait(compute, image["id"])
    assert server["status"] == "ACTIVE", server.get("fault")
    assert server["chute:image_transfer"]["method"] == "file"
    log = compute.log_text()
    assert f"Copied {images / image['id']} using file" in log
    for url, _, reason in hostile:
        lines = [line for line in log.splitlines()
                 if f"Direct path not used for {url}: " in line and "WARNING" in line]
        assert lines and WHY[reason] in lines[0], (url, reason, lines)

    # The image service's own download walks the same rows: it must skip them without
    # blocking on the FIFO or reading the device, and serve the good file.
    resp = requests.get(f"{api.url}/v2/images/{image['id']}/file", timeout=10)
    assert resp.status_code == 200 and resp.content == DATA

    assert trap.opened() == []
    with capsys.disabled():
        print(f"\n[hostile locations] boot: {len(hostile)} hostile locations served, "
              f"{len(hostile)} refused with the reason logged (devices tried: {devices}), "
              "outside targets opened 0 times")


def test_compute_mountpoint_that_prefixes_a_sibling(shared_api, start_compute, trap, capsys):
    """This host mounts the filesystem at <root>/g; <root>/gluster is a sibling. A symlink in
    the mount that resolves into the sibling is an escape, though '<root>/g' is a string
    prefix of '<root>/gluster/...'."""
    api = shared_api
    image = upload_image(api, DATA, name="loc")
    root = Path(api.root) / image["id"]  # private to this test in the shared server's tree
    mount, sibling = root / "g", root / "gluster" / "images"
    (mount / "images").mkdir(parents=True)
    sibling.mkdir(parents=True)
    (sibling / image["id"]).write_bytes(DATA)
    trap.watch(sibling)
    (mount / "images" / image["id"]).symlink_to(sibling / image["id"])

    compute = start_compute(api, **{"image_file_url:shared": {"mountpoint": str(mount)}})
    server = boot_and_wait(compute, image["id"])
    assert server["status"] == "ACTIVE", server.get("fault")
    assert server["chute:image_transfer"]["method"] == "http"
    log = compute.log_text()
    assert f"resolves to {sibling / image['id']}, outside the mountpoint {mount}" in log
    assert trap.opened() == []
    with capsys.disabled():
        print("\n[hostile locations] compute mountpoint prefix of a sibling: refused, "
              "fell back to http, sibling opened 0 times")


def test_translation_refuses_shapes_the_server_never_produces(tmp_path, trap, capsys):
    mount = tmp_path / "mnt" / "g"
    (mount / "images").mkdir(parents=True)
    (mount / "images" / "img").write_bytes(b"ok")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "trap").write_bytes(b"secret")
    trap.watch(outside)
    glance = "/srv/glance"
    fs = {FS_ID: shared_fs.Filesystem("g", FS_ID, str(mount))}
    meta = {"id": FS_ID, "mountpoint": glance}
    # url, metadata, reason raised by local_path (None: translated inside the mount, refused
    # when opened)
    shapes = [
        (f"file://otherhost{glance}/images/img", meta, "bad_url"),
        (f"file://{glance}/images/img?x=1", meta, "bad_url"),
        (f"file://{glance}/images/img#frag", meta, "bad_url"),
        (f"file://{glance}/images/img%00/../../../outside/trap", meta, "bad_url"),
        ("file:images/img", meta, "bad_url"),
        (f"file://{glance}/./images/img", meta, "dot_dot"),
        (f"file://{glance}/images/img/..", meta, "dot_dot"),
        (f"file://{glance}/images/%2E%2e/%2e%2E/outside/trap", meta, "dot_dot"),
        (f"file://{glance}/images/..%2F..%2F..%2Foutside%2Ftrap", meta, "dot_dot"),
        (f"file://{glance}/images/img", {"id": FS_ID, "mountpoint": f"{glance}/images/.."},
         "dot_dot"),
        (f"file://{glance}/images/img", {"id": FS_ID, "mountpoint": "srv/glance"}, "bad_url"),
        (f"file://{glance}/images/img", {"id": FS_ID}, "no_metadata"),
        (f"file://{glance}/images/img", {"id": ["x"], "mountpoint": glance}, "no_metadata"),
        (f"file://{glance}/images/img", {"id": "other", "mountpoint": glance},
         "unknown_filesystem"),
        (f"file://{glance}x/images/img", meta, "outside_mountpoint"),
        (f"file://{glance}", meta, "outside_mountpoint"),
        (f"file:////{tmp_path}/outside/trap", meta, "outside_mountpoint"),
        (f"file://{glance}/images/%252e%252e/%252e%252e/outside/trap", meta, None),
        (f"file://{glance}/images/..\\..\\..\\outside\\trap", meta, None),
        (f"file://{glance}/images/%c0%ae%c0%ae/outside/trap", meta, None),
        (f"file://{glance}/images/" + "a/" * 3000 + "img", meta, None),
        (f"file://{glance}/images", meta, None),  # a directory
    ]
    for url, metadata, reason in shapes:
        if reason is not None:
            with pytest.raises(DirectPathUnavailable) as caught:
                shared_fs.local_path(url, metadata, fs)
            assert caught.value.reason == reason, (url, caught.value.reason, caught.value.detail)
            continue
        path, found = shared_fs.local_path(url, metadata, fs)
        assert os.path.commonpath([path, str(mount)]) == str(mount), (url, path)
        with pytest.raises(DirectPathUnavailable) as caught:
            os.close(shared_fs.open_source(path, found))
        assert caught.value.reason in ("missing_file", "not_readable", "not_regular_file"), url
    # Doubled slashes alone are harmless: collapsed, then translated by components.
    path, found = shared_fs.local_path(f"file:///{glance}//images///img", meta, fs)
    os.close(shared_fs.open_source(path, found))
    assert path == str(mount / "images" / "img")
    assert trap.opened() == []
    with capsys.disabled():
        print(f"\n[hostile locations] translation: {len(shapes)} URL shapes, {len(shapes)} "
              "refused, outside opened 0 times")


def test_locations_endpoint_needs_the_service_token(start_api, start_compute, capsys):
    api = start_api(DEFAULT={"service_token": "s3cret-service", "show_multiple_locations": False,
                             "show_image_direct_url": False})
    image = upload_image(api, DATA, name="loc")
    assert "locations" not in image and "direct_url" not in image
    url = f"{api.url}/v2/images/{image['id']}/locations"
    refused = [{}, {"X-Auth-Token": "wrong"}, {"X-Auth-Token": ""},
               {"X-Auth-Token": "s3cret-service-x"}, {"X-Auth-Token": "S3CRET-SERVICE"},
               {"X-Auth-Token": "s3cret"}, {"X-Service-Token": "s3cret-service"},
               {"Authorization": "Bearer s3cret-service"}]
    for headers in refused:
        resp = requests.get(url, headers={**JSON, **headers}, timeout=10)
        assert resp.status_code == 403, (headers, resp.status_code, resp.text)
        assert "file://" not in resp.text
    resp = requests.get(f"{api.url}/v2/images", headers=JSON, timeout=10)
    assert "file://" not in resp.text
    resp = requests.get(url, headers={**JSON, "X-Auth-Token": "s3cret-service"}, timeout=10)
    assert resp.status_code == 200
    assert [loc["url"] for loc in resp.json()] == [f"file://{api.datadir / image['id']}"]

    with_token = start_compute(api, glance={"service_token": "s3cret-service"})
    server = boot_and_wait(with_token, image["id"])
    assert server["status"] == "ACTIVE", server.get("fault")
    assert server["chute:image_transfer"]["method"] == "file"
    without = start_compute(api)
    server = boot_and_wait(without, image["id"])
    assert server["status"] == "ACTIVE", server.get("fault")
    assert server["chute:image_transfer"]["method"] == "http"
    assert "Locations of image" in without.log_text()
    with capsys.disabled():
        print(f"\n[hostile locations] service-only endpoint: {len(refused)} non-service "
              "callers refused (403), the compute host with the token copied directly")
