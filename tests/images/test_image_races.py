"""Races between requests on one image, each run many times against 2 real workers.

Every metadata write and the status changes are compare-and-swaps in SQL (chute.images.db):
whatever the interleaving, the invariant of each test holds, or the loser is told (403/409).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial

import requests

from tests.helpers.disks import qemu_img
from tests.helpers.images import JSON, create, upload

PATCH21 = {"Content-Type": "application/openstack-images-v2.1-json-patch", **JSON}


def patch(api, image_id, ops) -> requests.Response:
    return requests.patch(f"{api.url}/v2/images/{image_id}", data=json.dumps(ops),
                          headers=PATCH21, timeout=30)


def get(api, image_id) -> requests.Response:
    return requests.get(f"{api.url}/v2/images/{image_id}", headers=JSON, timeout=10)


def at_once(calls: list[Callable[[], requests.Response]]) -> list[int]:
    """Run `calls` in threads released together; their status codes, in order."""
    start = threading.Barrier(len(calls))

    def run(call: Callable[[], requests.Response]) -> int:
        start.wait()
        return call().status_code

    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(run, calls))


def test_format_patch_racing_the_upload_never_activates_other_formats(shared_api, tmp_path):
    """The bytes are a qcow2 naming a backing file: uploaded as `ovf` they are not inspected
    (only `bare` is), as `bare` the inspection refuses them. So an active image must say
    `ovf`, whichever request lands first: a PATCH that lands while saving gets Glance's 403
    ("can be only replaced for a queued image"); one that lands first makes the upload
    inspect the bytes and refuse them (415), the image queued as `bare`."""
    disk = tmp_path / "backed.qcow2"
    qemu_img("create", "-q", "-f", "qcow2", "-u", "-b", "/etc/passwd", "-F", "raw", str(disk),
             "16M")
    data = disk.read_bytes()
    to_bare = [{"op": "replace", "path": "/container_format", "value": "bare"}]
    outcomes = set()
    for _ in range(40):
        image = create(shared_api, disk_format="qcow2", container_format="ovf")
        sent, patched = at_once([partial(upload, shared_api, image["id"], data),
                                 partial(patch, shared_api, image["id"], to_bare)])
        doc = get(shared_api, image["id"]).json()
        assert (sent, patched) in {(204, 403), (415, 200), (409, 200)}, (sent, patched, doc)
        if doc["status"] == "active":
            assert doc["container_format"] == "ovf", doc
        else:
            assert (doc["status"], doc["container_format"]) == ("queued", "bare"), doc
        outcomes.add((sent, patched))
        requests.delete(f"{shared_api.url}/v2/images/{image['id']}", timeout=10)
    assert outcomes  # which orders happen is up to the scheduler; none breaks the invariant


def test_concurrent_patches_of_different_properties_are_all_applied(shared_api):
    for round_ in range(12):
        image = create(shared_api, name=f"race{round_}")
        statuses = at_once([
            partial(patch, shared_api, image["id"],
                    [{"op": "add", "path": f"/p{i}", "value": str(i)}]) for i in range(8)])
        assert set(statuses) <= {200, 409}, statuses
        doc = get(shared_api, image["id"]).json()
        for i, status in enumerate(statuses):
            if status == 200:
                assert doc.get(f"p{i}") == str(i), (statuses, doc)
        # 16 internal retries for 8 writers: nobody should have needed the 409.
        assert statuses == [200] * 8, statuses


def test_protect_racing_delete_never_deletes_a_protected_image(shared_api):
    outcomes = set()
    for _ in range(40):
        image = create(shared_api)
        url = f"{shared_api.url}/v2/images/{image['id']}"
        protect = [{"op": "replace", "path": "/protected", "value": True}]
        patched, deleted = at_once([partial(patch, shared_api, image["id"], protect),
                                    partial(requests.delete, url, timeout=30)])
        assert (patched, deleted) in {(200, 403), (404, 204)}, (patched, deleted)
        if patched == 200:
            assert get(shared_api, image["id"]).json()["protected"] is True
            unprotect = [{"op": "replace", "path": "/protected", "value": False}]
            assert patch(shared_api, image["id"], unprotect).status_code == 200
            assert requests.delete(url, timeout=10).status_code == 204
        else:
            assert get(shared_api, image["id"]).status_code == 404
        outcomes.add((patched, deleted))
    assert outcomes


def test_concurrent_puts_of_one_tag_are_idempotent(shared_api):
    for _ in range(12):
        image = create(shared_api)
        url = f"{shared_api.url}/v2/images/{image['id']}/tags/same"
        statuses = at_once([partial(requests.put, url, timeout=30) for _ in range(8)])
        assert statuses == [204] * 8, statuses
        assert get(shared_api, image["id"]).json()["tags"] == ["same"]


def test_racing_new_tags_never_exceed_the_tag_quota(start_api):
    api = start_api(DEFAULT={"image_tag_quota": 3})
    for _ in range(15):
        image = create(api)
        base = f"{api.url}/v2/images/{image['id']}/tags"
        statuses = at_once([partial(requests.put, f"{base}/t{i}", timeout=30)
                            for i in range(8)])
        tags = get(api, image["id"]).json()["tags"]
        assert set(statuses) <= {204, 413}, statuses
        assert statuses.count(204) == 3 and len(tags) == 3, (statuses, tags)
        assert sorted(tags) == sorted(f"t{i}" for i, s in enumerate(statuses) if s == 204)
