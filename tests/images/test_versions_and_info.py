"""Where chute-api answers as Glance 33 does outside the images themselves: version
negotiation (the versions document with 300 for a version it does not serve), `/v2/info/*`,
and the one extension field of an image document, in Glance's reserved namespace."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import requests

from tests.helpers.images import create, show, upload

pytestmark = pytest.mark.backend_independent  # version negotiation and fixed documents

REFERENCE = Path("/work/shared/reference/glance-33-responses/versions.json")
GLANCE_33_IDS = {"v2.18", "v2.17", "v2.16", "v2.15", "v2.14", "v2.9", "v2.7", "v2.6", "v2.5",
                 "v2.4", "v2.3", "v2.2", "v2.1", "v2.0"}


def minor(version_id: str) -> int:
    return int(version_id.split(".")[1])


def test_versions_are_glances_up_to_the_import_ones(shared_api):
    """A version is cumulative: 2.6 (import), 2.7 and 2.9 are implemented; 2.15 and 2.17
    (locations add for services) are not, so nothing from 2.10 up is claimed."""
    if REFERENCE.exists():  # the captured answer, when this machine has it, confirms the list
        assert {v["id"] for v in json.loads(REFERENCE.read_text())["versions"]} == GLANCE_33_IDS
    ids = [v["id"] for v in requests.get(shared_api.url + "/versions").json()["versions"]]
    assert set(ids) <= GLANCE_33_IDS and max(minor(i) for i in ids) == 9
    assert {"v2.6", "v2.7"} <= set(ids)
    assert ids == sorted(ids, key=minor, reverse=True)


def test_a_version_chute_does_not_serve_gets_the_versions_document_with_300(shared_api):
    document = requests.get(shared_api.url + "/versions").json()
    for method, path in [("GET", "/v3/images"), ("POST", "/v3/images"), ("GET", "/v2.15/images"),
                         ("GET", "/v1/images/x"), ("DELETE", "/nope")]:
        answer = requests.request(method, shared_api.url + path)
        assert (answer.status_code, answer.json()) == (300, document), (method, path)
        assert answer.headers["Content-Type"].startswith("application/json")
    assert requests.get(shared_api.url + "/versions/anything").json() == document


def test_a_served_minor_version_in_the_path_or_accept_header_is_the_v2_api(shared_api):
    image = create(shared_api, name="negotiated")
    assert requests.get(f"{shared_api.url}/v2.3/images/{image['id']}").json() == show(
        shared_api, image["id"])
    by_media_type = requests.get(f"{shared_api.url}/images/{image['id']}",
                                 headers={"Accept": "application/vnd.openstack.images-v2.1"})
    assert by_media_type.status_code == 200 and by_media_type.json()["name"] == "negotiated"
    refused = requests.get(f"{shared_api.url}/images/{image['id']}",
                           headers={"Accept": "application/vnd.openstack.images-v3"})
    assert refused.status_code == 300
    assert requests.get(f"{shared_api.url}/v2/no-such-collection").status_code == 404


def test_info_usage_and_stores_answer_as_glance_without_limits_or_multi_store(shared_api):
    usage = requests.get(shared_api.url + "/v2/info/usage")
    assert (usage.status_code, usage.json()) == (200, {"usage": {}})
    stores = requests.get(shared_api.url + "/v2/info/stores")
    assert stores.status_code == 404
    assert "Multi backend is not supported at this site." in stores.text


def test_the_block_digest_is_read_only_and_frees_every_name_users_may_use(shared_api):
    """`chute_blake3_blocks` (the old key) is an ordinary property now; the digest is
    `os_glance_blake3_blocks`, which a user can neither create nor patch."""
    image = create(shared_api, name="digest", chute_blake3_blocks="mine",
                   disk_format="raw", container_format="bare")
    upload(shared_api, image["id"], b"d" * 4096)
    doc = show(shared_api, image["id"])
    assert doc["chute_blake3_blocks"] == "mine" and len(doc["os_glance_blake3_blocks"]) == 64
    refused = requests.patch(
        f"{shared_api.url}/v2/images/{image['id']}",
        data=json.dumps([{"op": "replace", "path": "/os_glance_blake3_blocks", "value": "0"}]),
        headers={"Content-Type": "application/openstack-images-v2.1-json-patch"})
    assert refused.status_code == 403 and "read-only" in refused.text
    assert show(shared_api, image["id"])["os_glance_blake3_blocks"] == doc[
        "os_glance_blake3_blocks"]
