"""Several stores (Glance's `enabled_backends`) against a real chute-api with two filesystem
stores, `rack1` (the default) and `rack2`, each on its own filesystem: what the stores look
like, uploads to a chosen store, copy-image, and removing one store's copy."""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.helpers.images import JSON, create, show, upload
from tests.helpers.polling import wait_for
from tests.helpers.services import ApiServer, api_on_database
from tests.helpers.stores import datadir, fs_id, prepare_stores_api

DATA = os.urandom(1 << 20) + b"\0" * (256 << 10)


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory,
        database_url: Callable[[], str]) -> Iterator[ApiServer]:
    server = prepare_stores_api(tmp_path_factory.mktemp("stores-api"),
                                **api_on_database(database_url(), {})).start()
    yield server
    server.kill()


def uploaded(api: ApiServer, store: str | None = None, data: bytes = DATA) -> dict:
    image = create(api, name=f"in-{store}")
    headers = {"X-Image-Meta-Store": store} if store else {}
    resp = upload(api, image["id"], data, headers=headers)
    assert resp.status_code == 204, resp.text
    return show(api, image["id"])


def start_import(api: ApiServer, image_id: str, body: dict,
                 headers: dict | None = None) -> requests.Response:
    return requests.post(f"{api.url}/v2/images/{image_id}/import", json=body,
                         headers={**JSON, **(headers or {})}, timeout=30)


def settled(api: ApiServer, image_id: str) -> dict:
    """The image once its import or copy has ended (the lock os_glance_import_task gone)."""
    return wait_for(lambda: "os_glance_import_task" not in (doc := show(api, image_id))
                    and doc, 30, "the copy to end")


def location_of(image: dict, store: str) -> dict:
    return next(loc for loc in image["locations"] if loc["metadata"].get("store") == store)


def test_the_stores_and_their_api_versions_are_listed_as_glance_lists_them(api):
    listed = requests.get(api.url + "/v2/info/stores", timeout=10)
    assert listed.status_code == 200
    assert listed.json() == {"stores": [
        {"id": "rack1", "description": "rack rack1", "default": "true"},
        {"id": "rack2", "description": "rack rack2"}]}
    detail = requests.get(api.url + "/v2/info/stores/detail", timeout=10).json()["stores"]
    assert [(s["id"], s["type"], s["properties"]["data_dir"]) for s in detail] == [
        ("rack1", "file", str(datadir(api, "rack1"))),
        ("rack2", "file", str(datadir(api, "rack2")))]
    created = requests.post(api.url + "/v2/images", json={"name": "h"}, headers=JSON)
    assert created.headers["OpenStack-image-store-ids"] == "rack1,rack2"
    assert "copy-image" in created.headers["OpenStack-image-import-methods"]
    versions = [v["id"] for v in requests.get(api.url + "/versions").json()["versions"]]
    assert versions[:6] == ["v2.13", "v2.12", "v2.11", "v2.10", "v2.9", "v2.8"]
    assert requests.get(api.url + "/v2.13/info/stores", timeout=10).status_code == 200


def test_an_upload_goes_to_the_default_store_or_the_one_named(api):
    default = uploaded(api)
    assert default["stores"] == "rack1"
    chosen = uploaded(api, "rack2")
    assert chosen["stores"] == "rack2"
    [location] = chosen["locations"]
    assert location["url"] == f"file://{datadir(api, 'rack2')}/{chosen['id']}"
    assert location["metadata"] == {"id": fs_id("rack2"), "mountpoint": str(api.root / "rack2"),
                                    "store": "rack2"}
    assert (datadir(api, "rack2") / chosen["id"]).read_bytes() == DATA
    assert not (datadir(api, "rack1") / chosen["id"]).exists()


def test_an_upload_to_an_unknown_store_is_refused_before_any_byte_is_stored(api):
    image = create(api, name="nowhere")
    resp = upload(api, image["id"], DATA, headers={"X-Image-Meta-Store": "rack9"})
    assert resp.status_code == 400
    assert "Unknown scheme 'rack9' found in URI" in resp.text
    assert show(api, image["id"])["status"] == "queued"


def test_copy_image_adds_a_verified_location_in_the_other_store(api):
    image = uploaded(api, "rack1")
    resp = start_import(api, image["id"], {"method": {"name": "copy-image"},
                                           "stores": ["rack2"]})
    assert resp.status_code == 202, resp.text
    copied = settled(api, image["id"])
    assert copied["status"] == "active" and copied["stores"] == "rack1,rack2"
    assert copied["os_glance_failed_import"] == ""
    assert copied["os_glance_importing_to_stores"] == ""
    assert location_of(copied, "rack2")["metadata"] == {
        "id": fs_id("rack2"), "mountpoint": str(api.root / "rack2"), "store": "rack2"}
    assert location_of(copied, "rack1")["metadata"]["id"] == fs_id("rack1")
    assert (datadir(api, "rack2") / image["id"]).read_bytes() == DATA
    again = start_import(api, image["id"], {"method": {"name": "copy-image"},
                                            "stores": ["rack2"]})
    assert again.status_code == 400
    assert "Image is already present at store 'rack2'" in again.text
    everywhere = start_import(api, image["id"], {"method": {"name": "copy-image"},
                                                 "all_stores": True})
    assert everywhere.status_code == 202  # nothing left to copy: nothing happens
    assert show(api, image["id"])["stores"] == "rack1,rack2"


def test_copy_image_refuses_what_glance_refuses(api):
    queued = create(api, name="queued")
    resp = start_import(api, queued["id"], {"method": {"name": "copy-image"},
                                            "stores": ["rack2"]})
    assert resp.status_code == 409
    assert "Only images with status active can be targeted for copying" in resp.text
    image = uploaded(api)
    unknown = start_import(api, image["id"], {"method": {"name": "copy-image"},
                                              "stores": ["rack9"]})
    assert unknown.status_code == 409 and "Unknown scheme 'rack9' found in URI" in unknown.text
    both = start_import(api, image["id"], {"method": {"name": "copy-image"},
                                           "stores": ["rack2"]},
                        headers={"X-Image-Meta-Store": "rack2"})
    assert both.status_code == 400
    assert "Stores parameter and x-image-meta-store header can't be both specified" in both.text


def test_a_copy_whose_bytes_are_not_the_images_never_becomes_a_location(api):
    image = uploaded(api, "rack1")
    source = datadir(api, "rack1") / image["id"]
    tampered = bytearray(source.read_bytes())
    tampered[4096] ^= 0xFF  # same size: only the digests can tell
    source.write_bytes(bytes(tampered))
    resp = start_import(api, image["id"], {"method": {"name": "copy-image"},
                                           "stores": ["rack2"]})
    assert resp.status_code == 202
    after = settled(api, image["id"])
    assert after["stores"] == "rack1" and after["os_glance_failed_import"] == "rack2"
    assert after["checksum"] == hashlib.md5(DATA).hexdigest()
    assert sorted(os.listdir(datadir(api, "rack2"))).count(image["id"]) == 0
    assert "copy to store rack2 failed" in api.log_text()


def test_of_two_racing_copies_to_one_store_one_runs(api):
    image = uploaded(api, "rack1")
    body = {"method": {"name": "copy-image"}, "stores": ["rack2"]}
    barrier = threading.Barrier(2)

    def racer() -> int:
        barrier.wait()
        return start_import(api, image["id"], body).status_code

    with ThreadPoolExecutor(2) as pool:
        codes = sorted(pool.map(lambda _: racer(), range(2)))
    after = settled(api, image["id"])
    # The loser is refused (409: the lock is taken; 400: the copy already done), never run.
    assert codes[0] == 202 and codes[1] in (400, 409), codes
    assert after["stores"] == "rack1,rack2" and after["os_glance_failed_import"] == ""


def test_a_file_an_interrupted_copy_left_does_not_block_the_next_copy(api):
    image = uploaded(api, "rack1")
    (datadir(api, "rack2") / image["id"]).write_bytes(b"half a copy")  # linked, not recorded
    assert start_import(api, image["id"], {"method": {"name": "copy-image"},
                                           "stores": ["rack2"]}).status_code == 202
    assert settled(api, image["id"])["stores"] == "rack1,rack2"
    assert (datadir(api, "rack2") / image["id"]).read_bytes() == DATA


def test_a_restart_mid_copy_ends_its_task_and_the_retried_copy_succeeds(tmp_path,
                                                                         database_url):
    slow = prepare_stores_api(tmp_path, **api_on_database(
        database_url(), {"glance_store": {"filesystem_store_chunk_size": 4096}}))
    slow.start()  # 4 KiB chunks: a copy of a few MiB lasts long enough to be killed midway
    try:
        data = os.urandom(6 << 20)
        image = uploaded(slow, "rack1", data)
        body = {"method": {"name": "copy-image"}, "stores": ["rack2"]}
        assert start_import(slow, image["id"], body).status_code == 202
        wait_for(lambda: any(name.endswith(".partial") for name in
                             os.listdir(datadir(slow, "rack2"))), 60, "the copy's file", 0.002)
        slow.kill()
        slow.start()  # one node: every copy a restart cut short ends, its lock released

        interrupted = show(slow, image["id"])
        assert "os_glance_import_task" not in interrupted
        assert interrupted["stores"] == "rack1"
        assert interrupted["os_glance_failed_import"] == "rack2"
        assert start_import(slow, image["id"], body).status_code == 202
        assert settled(slow, image["id"])["stores"] == "rack1,rack2"
        tasks = requests.get(f"{slow.url}/v2/images/{image['id']}/tasks", timeout=10).json()
        assert sorted(task["status"] for task in tasks["tasks"]) == ["failure", "success"]
        assert (datadir(slow, "rack2") / image["id"]).read_bytes() == data
        assert os.listdir(datadir(slow, "rack2")) == [image["id"]]
    finally:
        slow.kill()


def test_glance_direct_into_a_named_store_and_copied_to_the_next(api):
    image = create(api, name="staged")
    staged = requests.put(f"{api.url}/v2/images/{image['id']}/stage", data=DATA,
                          headers={"Content-Type": "application/octet-stream"}, timeout=30)
    assert staged.status_code == 204
    resp = start_import(api, image["id"], {"method": {"name": "glance-direct"},
                                           "stores": ["rack2", "rack1"]})
    assert resp.status_code == 202, resp.text
    done = settled(api, image["id"])
    assert (done["status"], done["stores"]) == ("active", "rack2,rack1")
    for store in ("rack1", "rack2"):
        assert (datadir(api, store) / image["id"]).read_bytes() == DATA
    assert not (datadir(api, "rack1") / ".staging" / image["id"]).exists()


def test_deleting_from_a_store_removes_that_copy_but_never_the_last(api):
    image = uploaded(api, "rack1")
    assert start_import(api, image["id"], {"method": {"name": "copy-image"},
                                           "stores": ["rack2"]}).status_code == 202
    assert settled(api, image["id"])["stores"] == "rack1,rack2"
    gone = requests.delete(f"{api.url}/v2/stores/rack1/{image['id']}", timeout=10)
    assert gone.status_code == 204, gone.text
    after = show(api, image["id"])
    assert after["stores"] == "rack2" and len(after["locations"]) == 1
    assert not (datadir(api, "rack1") / image["id"]).exists()
    assert requests.get(f"{api.url}/v2/images/{image['id']}/file").content == DATA
    last = requests.delete(f"{api.url}/v2/stores/rack2/{image['id']}", timeout=10)
    assert last.status_code == 403
    assert "Cannot delete image data from the only store containing it" in last.text
    absent = requests.delete(f"{api.url}/v2/stores/rack1/{image['id']}", timeout=10)
    assert absent.status_code == 403  # one location left: Glance checks that first
    unknown = requests.delete(f"{api.url}/v2/stores/rack9/{image['id']}", timeout=10)
    assert unknown.status_code == 409
    assert "The selected store rack9 is not available on this node." in unknown.text


def test_deleting_the_image_removes_its_copy_in_every_store(api):
    image = uploaded(api, "rack1")
    assert start_import(api, image["id"], {"method": {"name": "copy-image"},
                                           "all_stores": True}).status_code == 202
    assert settled(api, image["id"])["stores"] == "rack1,rack2"
    assert requests.delete(f"{api.url}/v2/images/{image['id']}", timeout=10).status_code == 204
    for store in ("rack1", "rack2"):
        assert not (datadir(api, store) / image["id"]).exists()
