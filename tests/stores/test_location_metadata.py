"""filesystem_store_metadata_file: matched by path components, stored at upload time."""

from __future__ import annotations

import json

import requests

from chute.stores.metadata import match
from tests.helpers.images import JSON, create, show, upload

ENTRIES = [{"id": "nfs1", "mountpoint": "/mnt/nfs1"},
           {"id": "nfs10", "mountpoint": "/mnt/nfs10"},
           {"id": "mnt", "mountpoint": "/mnt"},
           {"id": "deep", "mountpoint": "/mnt/nfs1/images/"}]


def test_match_by_components_not_string_prefix():
    assert match(ENTRIES, "/mnt/nfs10/images/x")["id"] == "nfs10"
    assert match(ENTRIES, "/mnt/nfs1/x")["id"] == "nfs1"
    assert match(ENTRIES, "/mnt/nfs1/images/x")["id"] == "deep"  # most specific wins
    assert match(ENTRIES, "/mnt/nfs100/x")["id"] == "mnt"
    assert match(ENTRIES, "/srv/x") == {}
    assert match(ENTRIES, "/mnt/nfs1/../nfs10/x")["id"] == "nfs10"


def test_server_picks_nfs10_where_glance_would_pick_nfs1(start_api, tmp_path):
    root = tmp_path
    meta = root / "meta.json"
    meta.write_text(json.dumps([{"id": "nfs1", "mountpoint": str(root / "nfs1")},
                                {"id": "nfs10", "mountpoint": str(root / "nfs10")}]))
    api = start_api(glance_store={"filesystem_store_datadir": str(root / "nfs10" / "images"),
                                  "filesystem_store_metadata_file": str(meta)})
    image = create(api)
    assert upload(api, image["id"], b"data").status_code == 204
    assert show(api, image["id"])["locations"][0]["metadata"] == {
        "id": "nfs10", "mountpoint": str(root / "nfs10")}


def test_changed_metadata_file_applies_only_to_new_images(start_api):
    api = start_api()
    old = create(api)
    assert upload(api, old["id"], b"old").status_code == 204
    old_meta = {"id": "shared-fs-1", "mountpoint": str(api.root / "store")}
    assert show(api, old["id"])["locations"][0]["metadata"] == old_meta

    new_meta = {"id": "shared-fs-2", "mountpoint": str(api.root / "store"), "extra": ["a"]}
    (api.root / "metadata.json").write_text(json.dumps(new_meta))
    api.restart()
    new = create(api)
    assert upload(api, new["id"], b"new").status_code == 204
    assert show(api, new["id"])["locations"][0]["metadata"] == new_meta
    assert show(api, old["id"])["locations"][0]["metadata"] == old_meta
    listed = requests.get(api.url + "/v2/images", headers=JSON).json()["images"]
    assert {i["id"]: i["locations"][0]["metadata"]["id"] for i in listed} == {
        old["id"]: "shared-fs-1", new["id"]: "shared-fs-2"}
