"""The server API around a boot, as clients use it: list filters, sorting and paging, rename,
metadata, tags, instance actions, security groups, zones, extra specs, limits."""

from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from tests.helpers.servers import boot_body, nova, wait_built


@pytest.fixture(scope="module")
def fleet(booting):
    """Three ACTIVE servers with different names, tags and flavors; and one key."""
    compute, image = booting
    nova(compute, "POST", "/os-keypairs", json={"keypair": {"name": "fleet-key"}})
    specs = [("web-1", ["web", "prod"], "1", {"key_name": "fleet-key"}),
             ("web-2", ["web"], "2", {}), ("db-1", ["db", "prod"], "1", {})]
    ids = {}
    for name, tags, flavor, extra in specs:
        resp = nova(compute, "POST", "/servers",
                    json=boot_body(image, name, flavor, tags=tags, **extra))
        assert resp.status_code == 202, resp.text
        ids[name] = resp.json()["server"]["id"]
    for server_id in ids.values():
        assert wait_built(compute, server_id)["status"] == "ACTIVE"
    return compute, image, ids


def names(compute, query, version="2.79", detail=False):
    resp = nova(compute, "GET", f"/servers{'/detail' if detail else ''}?{query}", version)
    assert resp.status_code == 200, resp.text
    return sorted(s["name"] for s in resp.json()["servers"])


@pytest.mark.parametrize("query, expected", [
    ("name=web", ["web-1", "web-2"]),
    ("name=^db-[0-9]$", ["db-1"]),
    ("status=ACTIVE&name=1$", ["db-1", "web-1"]),
    ("status=ERROR", []),
    ("status=NOSUCH", []),
    ("flavor=2", ["web-2"]),
    ("tags=web,prod", ["web-1"]),
    ("tags-any=db,web", ["db-1", "web-1", "web-2"]),
    ("not-tags=prod", ["web-2"]),
    ("not-tags-any=db", ["web-1", "web-2"]),
    ("key_name=fleet-key", ["web-1"]),
    ("changes-since=2000-01-01T00:00:00Z&name=-", ["db-1", "web-1", "web-2"]),
    ("changes-since=2999-01-01T00:00:00Z", []),
    ("ip=10.0.0.1", []),
])
def test_list_filters(fleet, query, expected):
    compute, _, _ = fleet
    assert names(compute, query) == expected
    assert names(compute, query, detail=True) == expected


def test_image_filter_and_sorting(fleet):
    compute, image, _ = fleet
    assert {"db-1", "web-1", "web-2"} <= set(names(compute, f"image={image}"))
    resp = nova(compute, "GET", "/servers?sort_key=display_name&sort_dir=asc&name=-[12]$")
    assert [s["name"] for s in resp.json()["servers"]] == ["db-1", "web-1", "web-2"]
    resp = nova(compute, "GET", "/servers?sort_key=display_name&sort_dir=desc&name=-[12]$")
    assert [s["name"] for s in resp.json()["servers"]] == ["web-2", "web-1", "db-1"]


def test_paging_follows_servers_links(fleet):
    compute, _, _ = fleet
    seen, url = [], f"{compute.url}/v2.1/servers?limit=2&sort_key=display_name&sort_dir=asc"
    while url:
        body = requests.get(url, headers={"OpenStack-API-Version": "compute 2.79"},
                            timeout=10).json()
        seen += [s["name"] for s in body["servers"]]
        links = body.get("servers_links", [])
        url = links[0]["href"] if links else None
        if url:
            assert parse_qs(urlsplit(url).query)["limit"] == ["2"]
    assert seen == sorted(seen) and {"db-1", "web-1", "web-2"} <= set(seen)


@pytest.mark.parametrize("query, fragment", [
    ("limit=-1", "limit"), ("limit=x", "limit"), ("marker=nope", "marker [nope] not found"),
    ("sort_key=color", "sort_key"), ("sort_dir=up", "sort_dir"),
    ("changes-since=yesterday", "changes-since"), ("name=(", "not a regular expression"),
    ("colour=red", "colour"),
])
def test_bad_queries_are_bad_request(fleet, query, fragment):
    compute, _, _ = fleet
    resp = nova(compute, "GET", f"/servers?{query}")
    assert resp.status_code == 400
    assert fragment in resp.json()["badRequest"]["message"]


def test_unknown_query_parameters_are_ignored_before_2_75(fleet):
    compute, _, _ = fleet
    assert names(compute, "colour=red&name=^web-1$", "2.74") == ["web-1"]


def test_rename_and_describe(fleet, booting):
    compute, image = booting
    server_id = nova(compute, "POST", "/servers",
                     json=boot_body(image, "before")).json()["server"]["id"]
    resp = nova(compute, "PUT", f"/servers/{server_id}",
                json={"server": {"name": "after", "description": "renamed"}})
    assert resp.status_code == 200
    assert (resp.json()["server"]["name"], resp.json()["server"]["description"]) == (
        "after", "renamed")
    built = wait_built(compute, server_id)  # the build does not write the old name back
    assert built["name"] == "after" and built["status"] == "ACTIVE"
    refused = nova(compute, "PUT", f"/servers/{server_id}",
                   json={"server": {"description": "x"}}, version="2.18")
    assert refused.status_code == 400 and "'description'" in refused.text
    assert nova(compute, "PUT", f"/servers/{server_id}",
                json={"server": {"name": " "}}).status_code == 400


def test_metadata_api(fleet):
    compute, _, ids = fleet
    base = f"/servers/{ids['db-1']}/metadata"
    assert nova(compute, "PUT", base, json={"metadata": {"a": "1"}}).json() == {
        "metadata": {"a": "1"}}
    assert nova(compute, "POST", base, json={"metadata": {"b": "2"}}).json() == {
        "metadata": {"a": "1", "b": "2"}}
    assert nova(compute, "PUT", f"{base}/c", json={"meta": {"c": "3"}}).json() == {
        "meta": {"c": "3"}}
    assert nova(compute, "GET", f"{base}/b").json() == {"meta": {"b": "2"}}
    assert nova(compute, "DELETE", f"{base}/a").status_code == 204
    assert nova(compute, "GET", base).json() == {"metadata": {"b": "2", "c": "3"}}
    missing = nova(compute, "GET", f"{base}/a")
    assert missing.status_code == 404
    assert missing.json()["itemNotFound"]["message"] == "Metadata item was not found"
    mismatch = nova(compute, "PUT", f"{base}/x", json={"meta": {"y": "1"}})
    assert mismatch.json()["badRequest"]["message"] == "Request body and URI mismatch"
    full = nova(compute, "POST", base, json={"metadata": {f"k{n}": "v" for n in range(127)}})
    assert full.status_code == 403
    shown = nova(compute, "GET", f"/servers/{ids['db-1']}").json()["server"]
    assert shown["metadata"] == {"b": "2", "c": "3"}


def test_tags_api(fleet):
    compute, _, ids = fleet
    base = f"/servers/{ids['web-2']}/tags"
    assert nova(compute, "GET", base).json() == {"tags": ["web"]}
    added = nova(compute, "PUT", f"{base}/blue")
    assert added.status_code == 201 and added.headers["Location"].endswith(f"{base}/blue")
    assert nova(compute, "PUT", f"{base}/blue").status_code == 204
    assert nova(compute, "GET", f"{base}/blue").status_code == 204
    assert nova(compute, "GET", f"{base}/red").status_code == 404
    assert nova(compute, "PUT", base, json={"tags": ["x", "y"]}).json() == {"tags": ["x", "y"]}
    assert nova(compute, "DELETE", f"{base}/x").status_code == 204
    assert nova(compute, "GET", base).json() == {"tags": ["y"]}
    assert nova(compute, "DELETE", base).status_code == 204
    assert nova(compute, "GET", base).json() == {"tags": []}
    assert nova(compute, "GET", base, "2.25").status_code == 404
    nova(compute, "PUT", base, json={"tags": ["web"]})


def test_instance_actions_record_create_and_delete(fleet, booting):
    compute, image = booting
    resp = nova(compute, "POST", "/servers", json=boot_body(image, "acted"))
    server_id, request_id = resp.json()["server"]["id"], resp.headers["x-openstack-request-id"]
    wait_built(compute, server_id)
    (action,) = nova(compute, "GET", f"/servers/{server_id}/os-instance-actions").json()[
        "instanceActions"]
    assert (action["action"], action["request_id"], action["instance_uuid"]) == (
        "create", request_id, server_id)
    assert action["start_time"] and action["message"] is None
    shown = nova(compute, "GET", f"/servers/{server_id}/os-instance-actions/{request_id}")
    (event,) = shown.json()["instanceAction"]["events"]
    assert event["event"] == "compute__do_build_and_run_instance"
    assert event["result"] == "Success" and event["finish_time"] >= event["start_time"]
    deleted = nova(compute, "DELETE", f"/servers/{server_id}")
    after = nova(compute, "GET", f"/servers/{server_id}/os-instance-actions").json()
    assert [a["action"] for a in after["instanceActions"]] == ["delete", "create"]
    assert after["instanceActions"][0]["request_id"] == deleted.headers[
        "x-openstack-request-id"]
    assert nova(compute, "GET", f"/servers/{server_id}/os-instance-actions",
                "2.20").status_code == 404
    assert nova(compute, "GET", f"/servers/{server_id}/os-instance-actions/req-x"
                ).status_code == 404


def test_security_groups_zones_extra_specs_limits(fleet):
    compute, _, ids = fleet
    groups = nova(compute, "GET", f"/servers/{ids['web-1']}/os-security-groups").json()
    assert groups == {"security_groups": []}  # no firewall, so no group
    assert nova(compute, "GET", "/servers/nope/os-security-groups").status_code == 404
    zones = nova(compute, "GET", "/os-availability-zone").json()["availabilityZoneInfo"]
    assert zones == [{"zoneName": "nova", "zoneState": {"available": True}, "hosts": None}]
    (detail,) = nova(compute, "GET", "/os-availability-zone/detail").json()[
        "availabilityZoneInfo"]
    (services,) = detail["hosts"].values()
    assert services["nova-compute"]["available"] is True
    assert nova(compute, "GET", "/flavors/1/os-extra_specs").json() == {"extra_specs": {}}
    assert nova(compute, "GET", "/flavors/1/os-extra_specs/hw:cpu").status_code == 404
    assert nova(compute, "GET", "/flavors/99/os-extra_specs").status_code == 404
    absolute = nova(compute, "GET", "/limits").json()["limits"]["absolute"]
    assert absolute["maxServerMeta"] == 128 and absolute["maxTotalKeypairs"] == 100
    assert absolute["maxTotalInstances"] == -1
    assert absolute["totalInstancesUsed"] >= 3 and "maxPersonality" not in absolute
    assert "maxPersonality" in nova(compute, "GET", "/limits", None).json()["limits"][
        "absolute"]


def test_a_name_pattern_that_backtracks_forever_is_stopped(fleet, booting):
    compute, image = booting
    resp = nova(compute, "POST", "/servers", json=boot_body(image, "a" * 60 + "b"))
    assert resp.status_code == 202
    slow = nova(compute, "GET", "/servers?name=(a|aa)%2B$")
    assert slow.status_code == 400
    assert "took longer than 1 s" in slow.json()["badRequest"]["message"]
    assert names(compute, "name=^a%2Bb$") == ["a" * 60 + "b"]
