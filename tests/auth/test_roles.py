"""Who may do what, in `auth_strategy = tokens`: one table of callers x operations, each row
sent to the real chute-api and chute-compute (tests/auth/conftest.py).

The expected statuses are Glance 33's and Nova's default rules: another project's private
image, or a shared one it is no member of, does not exist for it (404), and so does another
project's server; a role too weak for an operation on what the caller sees is 403; no token,
or a token in no tokens file, is 401. The image rows are real Glance 33's answers
(glance33_roles.json, captured by capture_glance33.py), except the service column: chute's
service identity sees every image, which Glance's does not (chute.auth.policy says why), so
where Glance answers 404 chute answers what the service role may do: read, or 403.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import requests

from tests.helpers.roles import ORDER, PATCH, RAW, TABLE, Cloud

ROWS = [pytest.param(op, caller, want, id=f"{op} as {caller}")
        for op, (_, wants) in TABLE.items() for caller, want in zip(ORDER, wants, strict=True)]


GLANCE_33 = json.loads((Path(__file__).parent / "glance33_roles.json").read_text())
NOT_AS_GLANCE = {"service"}


def test_the_image_rows_are_glance_33s_answers():
    differ = {(op, caller): (TABLE[op][1][ORDER.index(caller)], status)
              for op, answers in GLANCE_33.items() for caller, status in answers.items()
              if caller not in NOT_AS_GLANCE and TABLE[op][1][ORDER.index(caller)] != status}
    assert differ == {}, "(ours, Glance's)"
    assert set(GLANCE_33) <= set(TABLE)


@pytest.mark.parametrize(("operation", "caller", "want"), ROWS)
def test_who_may_do_what(cloud, operation, caller, want):
    resp = TABLE[operation][0](cloud, cloud.callers[caller])
    assert resp.status_code == want, resp.text


SPOOFED = {"X-Roles": "admin", "X-Project-Id": "proj-a", "X-Tenant-Id": "proj-a",
           "X-User-Id": "user-member", "X-Identity-Status": "Confirmed",
           "X-Service-Roles": "service", "X-Is-Admin-Project": "True"}


@pytest.mark.parametrize("caller", ["anonymous", "bad token", "other"])
def test_identity_headers_from_a_client_change_nothing(cloud, caller):
    who = cloud.callers[caller]
    want = 401 if who.project == "" or caller == "bad token" else 404
    for url in (f"{cloud.api.url}/v2/images/{cloud.private}",
                f"{cloud.api.url}/v2/images/{cloud.private}/locations",
                f"{cloud.compute.url}/v2.1/servers/{cloud.server}"):
        resp = requests.get(url, headers=who.headers(**SPOOFED), timeout=10)
        assert resp.status_code == want, (url, resp.text)
    listed = requests.get(f"{cloud.compute.url}/v2.1/servers?all_tenants=1",
                          headers=who.headers(**SPOOFED), timeout=10)
    assert listed.status_code == (401 if want == 401 else 403)


def _listed(cloud: Cloud, caller: str, **params: str) -> set[str]:
    resp = requests.get(f"{cloud.api.url}/v2/images", params=params,
                        headers=cloud.callers[caller].headers(), timeout=10)
    assert resp.status_code == 200, resp.text
    return {image["id"] for image in resp.json()["images"]}


def test_lists_show_what_glance_shows_each_project(cloud):
    assert {cloud.private, cloud.shared} <= _listed(cloud, "member")
    assert not {cloud.private, cloud.shared} & _listed(cloud, "other")
    assert cloud.shared in _listed(cloud, "accepted")
    assert cloud.shared not in _listed(cloud, "pending")
    assert cloud.shared in _listed(cloud, "pending", member_status="pending")
    assert cloud.private not in _listed(cloud, "accepted", member_status="all")
    assert {cloud.private, cloud.shared} <= _listed(cloud, "admin")


def test_community_images_are_listed_when_asked_for_or_owned(cloud):
    made = requests.post(f"{cloud.api.url}/v2/images", json={"name": "c", **RAW,
                                                             "visibility": "community"},
                         headers=cloud.callers["member"].headers(), timeout=10)
    assert made.status_code == 201, made.text
    community = made.json()["id"]
    assert community in _listed(cloud, "member")
    assert community not in _listed(cloud, "other")
    assert community in _listed(cloud, "other", visibility="community")
    shown = requests.get(f"{cloud.api.url}/v2/images/{community}",
                         headers=cloud.callers["other"].headers(), timeout=10)
    assert shown.status_code == 200


def test_the_owner_is_the_callers_project(cloud):
    made = requests.post(f"{cloud.api.url}/v2/images", json={"name": "mine", **RAW},
                         headers=cloud.callers["other"].headers(), timeout=10)
    assert made.json()["owner"] == "proj-b"
    refused = requests.post(f"{cloud.api.url}/v2/images", json={"name": "x", **RAW,
                                                                "owner": "proj-a"},
                            headers=cloud.callers["other"].headers(), timeout=10)
    assert refused.status_code == 403
    assert "not permitted to create images owned by 'proj-a'" in refused.text
    moved = requests.patch(f"{cloud.api.url}/v2/images/{made.json()['id']}",
                           json=[{"op": "replace", "path": "/owner", "value": "proj-c"}],
                           headers=cloud.callers["other"].headers(
                               **{"Content-Type": PATCH}), timeout=10)
    assert moved.status_code == 403, moved.text


def test_server_lists_are_scoped_to_the_project(cloud):
    def ids(caller: str, query: str = "") -> set[str]:
        resp = requests.get(f"{cloud.compute.url}/v2.1/servers{query}",
                            headers=cloud.callers[caller].headers(), timeout=10)
        assert resp.status_code == 200, resp.text
        return {server["id"] for server in resp.json()["servers"]}

    assert cloud.server in ids("member") and cloud.server in ids("reader")
    assert cloud.server not in ids("other")
    assert cloud.server not in ids("admin")  # Nova: an admin's own project, unless asked
    assert cloud.server in ids("admin", "?all_tenants=1")
    shown = requests.get(f"{cloud.compute.url}/v2.1/servers/{cloud.server}",
                         headers=cloud.callers["member"].headers(), timeout=10).json()
    assert shown["server"]["tenant_id"] == "proj-a"
    assert shown["server"]["user_id"] == "user-member"


def test_the_compute_host_copied_directly_as_the_service(cloud):
    """The boot of the fixture's server read the locations as the service identity."""
    assert "Successfully transferred using file" in cloud.compute.log_text()


@pytest.mark.parametrize(("caller", "want"), [("anonymous", 401), ("reader", 403),
                                              ("other", 404), ("pending", 403),
                                              ("member", 204), ("admin", 204)])
def test_who_may_delete_an_image(cloud, caller, want):
    made = requests.post(f"{cloud.api.url}/v2/images", json={"name": "d", **RAW,
                                                             "visibility": "shared"},
                         headers=cloud.callers["member"].headers(), timeout=10).json()
    requests.post(f"{cloud.api.url}/v2/images/{made['id']}/members", json={"member": "proj-m"},
                  headers=cloud.callers["member"].headers(), timeout=10)
    resp = requests.delete(f"{cloud.api.url}/v2/images/{made['id']}",
                           headers=cloud.callers[caller].headers(), timeout=10)
    assert resp.status_code == want, resp.text


@pytest.mark.parametrize(("caller", "want"), [("reader", 403), ("other", 404), ("member", 204)])
def test_who_may_upload_and_deactivate(cloud, caller, want):
    made = requests.post(f"{cloud.api.url}/v2/images", json={"name": "u", **RAW},
                         headers=cloud.callers["member"].headers(), timeout=10).json()
    who = cloud.callers[caller]
    upload = requests.put(f"{cloud.api.url}/v2/images/{made['id']}/file", data=b"\1" * 4096,
                          headers=who.headers(**{"Content-Type": "application/octet-stream"}),
                          timeout=10)
    assert upload.status_code == want, upload.text
    if want == 204:
        off = requests.post(f"{cloud.api.url}/v2/images/{made['id']}/actions/deactivate",
                            headers=who.headers(), timeout=10)
        assert off.status_code == 204, off.text


@pytest.mark.parametrize(("caller", "want"), [("reader", 403), ("other", 404), ("member", 204)])
def test_staging_and_importing_need_the_rights_of_an_upload(cloud, caller, want):
    made = requests.post(f"{cloud.api.url}/v2/images", json={"name": "i", **RAW},
                         headers=cloud.callers["member"].headers(), timeout=10).json()
    who = cloud.callers[caller]
    staged = requests.put(f"{cloud.api.url}/v2/images/{made['id']}/stage", data=b"\1" * 4096,
                          headers=who.headers(**{"Content-Type": "application/octet-stream"}),
                          timeout=10)
    assert staged.status_code == want, staged.text
    if want != 204:  # the owner stages; the caller may still not import it
        requests.put(f"{cloud.api.url}/v2/images/{made['id']}/stage", data=b"\1" * 4096,
                     headers=cloud.callers["member"].headers(
                         **{"Content-Type": "application/octet-stream"}), timeout=10)
    imported = requests.post(f"{cloud.api.url}/v2/images/{made['id']}/import",
                             json={"method": {"name": "glance-direct"}},
                             headers=who.headers(), timeout=10)
    assert imported.status_code == (202 if want == 204 else want), imported.text


@pytest.mark.parametrize(("caller", "want"), [("other", 404), ("reader", 403),
                                              ("member", 204)])
def test_who_may_delete_a_server(cloud, caller, want):
    made = requests.post(f"{cloud.compute.url}/v2.1/servers", json={"server": {
        "name": "d", "imageRef": cloud.private, "flavorRef": "1"}},
        headers=cloud.callers["member"].headers(), timeout=10)
    assert made.status_code == 202, made.text
    server_id = made.json()["server"]["id"]
    resp = requests.delete(f"{cloud.compute.url}/v2.1/servers/{server_id}",
                           headers=cloud.callers[caller].headers(), timeout=10)
    assert resp.status_code == want, resp.text


@pytest.mark.parametrize(("caller", "want"), [("member", 200), ("reader", 200), ("other", 404),
                                              ("anonymous", 401)])
def test_an_images_tasks_are_seen_by_who_sees_the_image(cloud, caller, want):
    """Glance's get_image rule: the project's reader sees its import's task, another project
    gets 404 (as for the image), no token 401."""
    owner = cloud.callers["member"]
    made = requests.post(f"{cloud.api.url}/v2/images", json={"name": "t", **RAW},
                         headers=owner.headers(), timeout=10).json()
    requests.put(f"{cloud.api.url}/v2/images/{made['id']}/stage", data=b"\1" * 4096,
                 headers=owner.headers(**{"Content-Type": "application/octet-stream"}),
                 timeout=10)
    requests.post(f"{cloud.api.url}/v2/images/{made['id']}/import",
                  json={"method": {"name": "glance-direct"}}, headers=owner.headers(),
                  timeout=10)
    listed = requests.get(f"{cloud.api.url}/v2/images/{made['id']}/tasks",
                          headers=cloud.callers[caller].headers(), timeout=10)
    assert listed.status_code == want, listed.text
    if want == 200:
        [task] = listed.json()["tasks"]
        assert (task["status"], task["owner"]) == ("success", owner.project)
