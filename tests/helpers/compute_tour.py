"""The compute routes around one server, exercised for tests/reliability/test_openapi.py's tour:
each call's status must be documented and its body must validate (`api` is its Checker)."""

from __future__ import annotations

from typing import Any

V226 = {"OpenStack-API-Version": "compute 2.26"}


def exercise(api: Any, server_id: str) -> None:
    one = f"/v2.1/servers/{server_id}"
    api("PUT", "/v2.1/servers/{server_id}", 200, one, json={"server": {"name": "doc2"}})
    api("PUT", "/v2.1/servers/{server_id}", 400, one, json={"server": {"colour": "red"}})
    meta = "/v2.1/servers/{server_id}/metadata"
    api("PUT", meta, 200, f"{one}/metadata", json={"metadata": {"a": "1"}})
    api("POST", meta, 200, f"{one}/metadata", json={"metadata": {"b": "2"}})
    api("GET", meta, 200, f"{one}/metadata")
    item = meta + "/{key}"
    api("PUT", item, 200, f"{one}/metadata/c", json={"meta": {"c": "3"}})
    api("GET", item, 200, f"{one}/metadata/c")
    api("DELETE", item, 204, f"{one}/metadata/c")
    api("GET", item, 404, f"{one}/metadata/c")
    tags = "/v2.1/servers/{server_id}/tags"
    api("PUT", tags, 200, f"{one}/tags", json={"tags": ["x"]}, headers=V226)
    api("GET", tags, 200, f"{one}/tags", headers=V226)
    tag = tags + "/{tag}"
    api("PUT", tag, 201, f"{one}/tags/y", headers=V226)
    api("PUT", tag, 204, f"{one}/tags/y", headers=V226)
    api("GET", tag, 204, f"{one}/tags/y", headers=V226)
    api("DELETE", tag, 204, f"{one}/tags/y", headers=V226)
    api("GET", tag, 404, f"{one}/tags/y", headers=V226)
    api("DELETE", tags, 204, f"{one}/tags", headers=V226)
    api("GET", "/v2.1/servers/{server_id}/os-security-groups", 200,
        f"{one}/os-security-groups")
    ips = "/v2.1/servers/{server_id}/ips"
    api("GET", ips, 200, f"{one}/ips")
    api("GET", ips + "/{network}", 404, f"{one}/ips/elsewhere")
    actions = "/v2.1/servers/{server_id}/os-instance-actions"
    listed = api("GET", actions, 200, f"{one}/os-instance-actions").json()
    request_id = listed["instanceActions"][0]["request_id"]
    api("GET", actions + "/{request_id}", 200, f"{one}/os-instance-actions/{request_id}")
    api("GET", actions + "/{request_id}", 404, f"{one}/os-instance-actions/req-none")
    _exercise_host(api)


def _exercise_host(api: Any) -> None:
    created = api("POST", "/v2.1/os-keypairs", 200, json={"keypair": {"name": "doc"}})
    assert "private_key" in created.json()["keypair"]
    api("POST", "/v2.1/os-keypairs", 409, json={"keypair": {"name": "doc"}})
    api("GET", "/v2.1/os-keypairs", 200)
    api("GET", "/v2.1/os-keypairs/{name}", 200, "/v2.1/os-keypairs/doc")
    api("DELETE", "/v2.1/os-keypairs/{name}", 202, "/v2.1/os-keypairs/doc")
    api("GET", "/v2.1/os-keypairs/{name}", 404, "/v2.1/os-keypairs/doc")
    api("GET", "/v2.1/os-availability-zone", 200)
    api("GET", "/v2.1/os-availability-zone/detail", 200)
    api("GET", "/v2.1/flavors/{flavor_id}/os-extra_specs", 200, "/v2.1/flavors/1/os-extra_specs")
    api("GET", "/v2.1/flavors/{flavor_id}/os-extra_specs/{key}", 404,
        "/v2.1/flavors/1/os-extra_specs/hw:cpu")
    api("GET", "/v2.1/limits", 200)
    quotas = "/v2.1/os-quota-sets/{project_id}"
    api("PUT", quotas, 200, "/v2.1/os-quota-sets/doc", json={"quota_set": {"instances": 5}})
    api("PUT", quotas, 400, "/v2.1/os-quota-sets/doc", json={"quota_set": {"colour": 1}})
    api("GET", quotas, 200, "/v2.1/os-quota-sets/doc")
    api("GET", quotas + "/detail", 200, "/v2.1/os-quota-sets/doc/detail")
    api("GET", quotas + "/defaults", 200, "/v2.1/os-quota-sets/doc/defaults")
    api("DELETE", quotas, 202, "/v2.1/os-quota-sets/doc")
