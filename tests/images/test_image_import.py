"""Glance's interoperable import against a real chute-api: stage + glance-direct, web-download
from a loopback server the filter was configured to allow, and what a failure leaves."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator

import pytest
import requests

from tests.helpers.disks import make_qcow2
from tests.helpers.images import JSON, OCTET, create, show
from tests.helpers.polling import wait_for
from tests.helpers.services import ApiServer, api_on_database, prepare_api
from tests.helpers.web import Files, serving

DATA = os.urandom(3 << 20) + b"\0" * (1 << 20)


@pytest.fixture(scope="module")
def web() -> Iterator[Files]:
    with serving(Files()) as files:
        yield files


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory, web: Files,
        database_url: Callable[[], str]) -> Iterator[ApiServer]:
    """Loopback is refused by Glance's default filter; this API allows exactly the test's
    server (host and port), as an operator would allow an internal mirror."""
    server = prepare_api(tmp_path_factory.mktemp("import-api"), **api_on_database(
        database_url(), {"import_filtering_opts": {
            "allowed_hosts": ["127.0.0.1"], "allowed_ports": [str(web.port)]}})).start()
    yield server
    server.kill()


def stage(api: ApiServer, image_id: str, data: bytes) -> requests.Response:
    return requests.put(f"{api.url}/v2/images/{image_id}/stage", data=data,
                        headers={**OCTET, **JSON}, timeout=60)


def start_import(api: ApiServer, image_id: str, method: dict) -> requests.Response:
    return requests.post(f"{api.url}/v2/images/{image_id}/import", json={"method": method},
                         headers=JSON, timeout=30)


def settled(api: ApiServer, image_id: str) -> dict:
    """The image once its import has ended (its lock, os_glance_import_task, is gone)."""
    return wait_for(lambda: (doc := show(api, image_id))["status"] in ("active", "queued")
                    and "os_glance_import_task" not in doc and doc, 30, "the import to end")


def test_the_import_methods_are_announced_as_glance_does(api):
    info = requests.get(api.url + "/v2/info/import").json()
    assert info["import-methods"]["value"] == ["glance-direct", "web-download"]
    created = requests.post(api.url + "/v2/images", json={"name": "h"}, headers=JSON)
    assert created.headers["OpenStack-image-import-methods"] == "glance-direct,web-download"
    versions = [v["id"] for v in requests.get(api.url + "/versions").json()["versions"]]
    assert versions[:3] == ["v2.9", "v2.7", "v2.6"]


def test_glance_direct_verifies_at_stage_time_and_ends_in_a_rename(api):
    image = create(api, name="direct")
    assert stage(api, image["id"], DATA).status_code == 204
    staged = show(api, image["id"])
    assert (staged["status"], staged["size"]) == ("uploading", len(DATA))
    staged_file = api.datadir / ".staging" / image["id"]
    inode = staged_file.stat().st_ino

    assert start_import(api, image["id"], {"name": "glance-direct"}).status_code == 202
    done = settled(api, image["id"])
    assert done["status"] == "active"
    assert done["checksum"] == hashlib.md5(DATA).hexdigest()
    assert done["os_hash_value"] == hashlib.sha512(DATA).hexdigest()
    assert done["os_glance_failed_import"] == "" and done["os_glance_importing_to_stores"] == ""
    assert (api.datadir / image["id"]).stat().st_ino == inode  # the same file: no copy
    assert not staged_file.exists()
    assert requests.get(f"{api.url}/v2/images/{image['id']}/file").content == DATA


def test_import_refusals_name_the_problem(api):
    image = create(api, name="refusals")
    unstaged = start_import(api, image["id"], {"name": "glance-direct"})
    assert unstaged.status_code == 409 and "needs to be staged" in unstaged.text
    unknown = start_import(api, image["id"], {"name": "copy-image"})
    assert unknown.status_code == 400 and "Unknown import method name 'copy-image'" in unknown.text
    no_method = requests.post(f"{api.url}/v2/images/{image['id']}/import", json={},
                              headers=JSON)
    assert no_method.status_code == 400 and "requires a 'method' field" in no_method.text
    assert stage(api, image["id"], b"x" * 4096).status_code == 204
    again = stage(api, image["id"], b"x" * 4096)
    assert again.status_code == 409 and "uploading" in again.text
    web_on_staged = start_import(api, image["id"], {"name": "web-download", "uri": "http://x/"})
    assert web_on_staged.status_code == 409 and "'queued' state" in web_on_staged.text


def test_staged_bytes_are_inspected_as_an_upload(api, tmp_path):
    """Raw bytes declared qcow2: 415 at stage time, the image queued, nothing staged."""
    image = create(api, name="liar", disk_format="qcow2")
    refused = stage(api, image["id"], DATA)
    assert refused.status_code == 415, refused.text
    assert show(api, image["id"])["status"] == "queued"
    assert not (api.datadir / ".staging" / image["id"]).exists()
    qcow2 = make_qcow2(tmp_path / "good.qcow2", "16M", data_mb=1).read_bytes()
    assert stage(api, image["id"], qcow2).status_code == 204
    assert start_import(api, image["id"], {"name": "glance-direct"}).status_code == 202
    assert settled(api, image["id"])["virtual_size"] == 16 << 20


def test_deleting_a_staged_image_removes_the_staged_data(api):
    image = create(api, name="staged-then-deleted")
    assert stage(api, image["id"], b"s" * 8192).status_code == 204
    assert requests.delete(f"{api.url}/v2/images/{image['id']}").status_code == 204
    assert not (api.datadir / ".staging" / image["id"]).exists()


def test_web_download_fetches_verifies_and_activates(api, web):
    web.served["/disk.raw"] = DATA
    image = create(api, name="web")
    accepted = start_import(api, image["id"], {"name": "web-download",
                                               "uri": web.url("/disk.raw")})
    assert accepted.status_code == 202, accepted.text
    done = settled(api, image["id"])
    assert done["status"] == "active", done
    assert (done["size"], done["checksum"]) == (len(DATA), hashlib.md5(DATA).hexdigest())
    assert requests.get(f"{api.url}/v2/images/{image['id']}/file").content == DATA


def test_a_failed_web_download_leaves_the_image_queued_with_the_reason(api, web, tmp_path):
    web.served["/not-a-qcow2"] = DATA
    image = create(api, name="web-liar", disk_format="qcow2")
    assert start_import(api, image["id"], {"name": "web-download",
                                           "uri": web.url("/not-a-qcow2")}).status_code == 202
    failed = settled(api, image["id"])
    assert failed["status"] == "queued" and failed["size"] is None
    assert "/not-a-qcow2" in failed["os_glance_failed_import"]
    assert "qcow2" in failed["os_glance_failed_import"]

    missing = create(api, name="web-404")
    assert start_import(api, missing["id"], {"name": "web-download",
                                             "uri": web.url("/nothing")}).status_code == 202
    assert "HTTP 404" in settled(api, missing["id"])["os_glance_failed_import"]
    # The failed image takes a new import: the first one's lock is gone.
    web.served["/good.raw"] = b"g" * 65536
    assert start_import(api, missing["id"], {"name": "web-download",
                                             "uri": web.url("/good.raw")}).status_code == 202
    assert settled(api, missing["id"])["status"] == "active"


def test_a_redirect_is_not_followed_past_the_filter(api, web):
    web.redirects["/elsewhere"] = "http://169.254.169.254/latest/meta-data/"
    image = create(api, name="redirected")
    assert start_import(api, image["id"], {"name": "web-download",
                                           "uri": web.url("/elsewhere")}).status_code == 202
    assert "HTTP 302" in settled(api, image["id"])["os_glance_failed_import"]


@pytest.mark.parametrize("uri", [
    "http://127.0.0.1:{port}/disk.raw",      # loopback: refused by default, as by Glance
    "http://localhost/disk.raw",
    "http://169.254.169.254/latest/",        # link-local: cloud metadata
    "http://2130706433/", "http://127.1/",   # addresses in disguise
    "ftp://example.org/disk.raw",            # scheme not allowed
    "http://example.org:8080/disk.raw",      # port not allowed (80, 443)
])
def test_glance_default_filter_refuses_what_it_refuses(shared_api, web, uri):
    image = create(shared_api, name="filtered")
    fetched = len(web.requests)
    refused = start_import(shared_api, image["id"],
                           {"name": "web-download", "uri": uri.format(port=web.port)})
    assert refused.status_code == 400
    assert "URI for web-download does not pass filtering" in refused.text
    assert show(shared_api, image["id"])["status"] == "queued"
    assert len(web.requests) == fetched  # refused before any connection


def test_the_filter_allows_only_the_configured_host_and_port(api, web):
    image = create(api, name="other-port")
    refused = start_import(api, image["id"], {"name": "web-download",
                                              "uri": f"http://127.0.0.1:{web.port + 1}/x"})
    assert refused.status_code == 400


# One node (SQLite) knows every import in flight at its start was cut by its own restart;
# several nodes (PostgreSQL) know only that the node holding the import's claim is gone.
RESTART_REASON = {"sqlite": "interrupted by a restart of chute-api",
                  "postgresql": "interrupted: the chute-api node running the import stopped"}


def test_an_import_a_restart_interrupted_is_queued_again_with_the_reason(api, web, db_backend):
    web.stalls.add("/endless")
    image = create(api, name="interrupted")
    assert start_import(api, image["id"], {"name": "web-download",
                                           "uri": web.url("/endless")}).status_code == 202
    assert show(api, image["id"])["status"] == "importing"
    wait_for(lambda: "/endless" in web.requests, 10, "the download to start")
    api.kill()
    api.start()
    requeued = show(api, image["id"])
    assert requeued["status"] == "queued" and "os_glance_import_task" not in requeued
    assert requeued["os_glance_failed_import"] == RESTART_REASON[db_backend]


def tasks(api: ApiServer, image_id: str) -> list[dict]:
    listed = requests.get(f"{api.url}/v2/images/{image_id}/tasks", timeout=30)
    assert listed.status_code == 200, listed.text
    return listed.json()["tasks"]


def test_each_import_is_listed_as_glance_lists_its_task(api, web):
    """Glance 2.12's `GET /v2/images/{id}/tasks`: the import's input, outcome, and the request
    that asked for it."""
    image = create(api, name="tasked")
    assert tasks(api, image["id"]) == []
    assert stage(api, image["id"], DATA).status_code == 204
    started = start_import(api, image["id"], {"name": "glance-direct"})
    [task] = tasks(api, image["id"])
    assert (task["type"], task["status"], task["image_id"]) == (
        "api_image_import", "success", image["id"])
    assert task["input"] == {"image_id": image["id"], "backend": None,
                             "import_req": {"method": {"name": "glance-direct"}}}
    assert task["result"] == {"image_id": image["id"]} and task["message"] == ""
    assert task["request_id"] == started.headers["x-openstack-request-id"]
    assert task["expires_at"] > task["created_at"] and task["deleted"] is False

    failing = create(api, name="tasked-web", disk_format="qcow2")
    web.served["/raw-not-qcow2"] = DATA
    uri = web.url("/raw-not-qcow2")
    assert start_import(api, failing["id"], {"name": "web-download",
                                             "uri": uri}).status_code == 202
    settled(api, failing["id"])
    [failed] = tasks(api, failing["id"])
    assert (failed["status"], failed["result"]) == ("failure", None)
    assert failed["message"].startswith(uri) and "qcow2" in failed["message"]
    assert failed["input"]["import_req"]["method"] == {"name": "web-download", "uri": uri}


def test_the_tasks_of_an_unknown_image_are_404(api):
    missing = requests.get(f"{api.url}/v2/images/{'0' * 8}-0000-0000-0000-{'0' * 12}/tasks",
                           timeout=30)
    assert missing.status_code == 404 and "No image found" in missing.text
