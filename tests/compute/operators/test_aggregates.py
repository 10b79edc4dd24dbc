"""os-aggregates on chute-compute-api: create, list, show, update, delete, add and remove
hosts, metadata; an aggregate's availability zone places a boot that asks for it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.helpers.cluster import Cluster, server_host
from tests.helpers.servers import nova, wait_built


def call(cluster: Cluster, method: str, path: str, body: object = None,
         version: str | None = "2.41", status: int = 200) -> dict:
    resp = nova(cluster.api, method, path, version, json=body)
    assert resp.status_code == status, resp.text
    return resp.json() if resp.content else {}


@pytest.fixture
def rack(cluster: Cluster) -> Iterator[dict]:
    found = call(cluster, "POST", "/os-aggregates", {"aggregate": {"name": "rack-a"}})
    yield found["aggregate"]
    agg_id = found["aggregate"]["id"]
    for host in call(cluster, "GET", f"/os-aggregates/{agg_id}")["aggregate"]["hosts"]:
        call(cluster, "POST", f"/os-aggregates/{agg_id}/action",
             {"remove_host": {"host": host}})
    call(cluster, "DELETE", f"/os-aggregates/{agg_id}")


def test_create_answers_as_nova_without_hosts_or_metadata(cluster: Cluster,
                                                          rack: dict) -> None:
    assert rack["name"] == "rack-a" and rack["availability_zone"] is None
    assert "hosts" not in rack and "metadata" not in rack and len(rack["uuid"]) == 36
    listed = call(cluster, "GET", "/os-aggregates")["aggregates"]
    assert [a["uuid"] for a in listed if a["name"] == "rack-a"] == [rack["uuid"]]
    old = call(cluster, "GET", f"/os-aggregates/{rack['id']}", version=None)["aggregate"]
    assert "uuid" not in old and old["hosts"] == [] and old["metadata"] == {}


def test_an_aggregates_zone_places_the_boots_that_ask_for_it(cluster: Cluster, rack: dict,
                                                             image_id: str) -> None:
    path = f"/os-aggregates/{rack['id']}"
    call(cluster, "POST", f"{path}/action", {"add_host": {"host": "host3"}})
    shown = call(cluster, "POST", f"{path}/action",
                 {"set_metadata": {"metadata": {"availability_zone": "zone-c", "ssd": "1"}}})
    assert shown["aggregate"]["availability_zone"] == "zone-c"
    assert shown["aggregate"]["hosts"] == ["host3"]
    body = {"server": {"name": "zoned", "imageRef": image_id, "flavorRef": "1",
                       "availability_zone": "zone-c"}}
    server_id = call(cluster, "POST", "/servers", body, None, 202)["server"]["id"]
    assert wait_built(cluster.api, server_id)["status"] == "ACTIVE"
    assert server_host(cluster.api, server_id) == "host3"
    zones = call(cluster, "GET", "/os-availability-zone/detail")["availabilityZoneInfo"]
    hosts = {z["zoneName"]: sorted(z["hosts"]) for z in zones}
    assert hosts == {"nova": ["host1", "host2"], "zone-c": ["host3"]}
    assert all(z["zoneState"]["available"] for z in zones)
    services = call(cluster, "GET", "/os-services")["services"]
    assert {s["host"]: s["zone"] for s in services}["host3"] == "zone-c"
    updated = call(cluster, "PUT", path, {"aggregate": {"name": "rack-a", "availability_zone":
                                                        "zone-d"}})
    assert updated["aggregate"]["metadata"] == {"availability_zone": "zone-d", "ssd": "1"}
    call(cluster, "POST", f"{path}/action",
         {"set_metadata": {"metadata": {"availability_zone": None, "ssd": None}}})


@pytest.mark.parametrize(("method", "path", "body", "status", "fragment"), [
    ("POST", "/os-aggregates", {"aggregate": {"name": "rack-a"}}, 409, "already exists"),
    ("POST", "/os-aggregates", {"aggregate": {"name": ""}}, 400, "name"),
    ("POST", "/os-aggregates", {"name": "x"}, 400, "'aggregate' object"),
    ("GET", "/os-aggregates/4242", None, 404, "Aggregate 4242 could not be found"),
    ("POST", "{rack}/action", {"add_host": {"host": "ghost"}}, 404,
     "Compute host ghost could not be found"),
    ("POST", "{rack}/action", {"remove_host": {"host": "host1"}}, 404, "not in it"),
    ("POST", "{rack}/action", {"reboot": {}}, 400, "Invalid aggregate action"),
    ("PUT", "{rack}", {"aggregate": {"hosts": []}}, 400, "name and/or availability_zone"),
])
def test_bad_requests_are_refused_naming_the_problem(cluster: Cluster, rack: dict, method: str,
                                                     path: str, body: object, status: int,
                                                     fragment: str) -> None:
    path = path.format(rack=f"/os-aggregates/{rack['id']}")
    resp = nova(cluster.api, method, path, "2.41", json=body)
    assert resp.status_code == status, resp.text
    assert fragment in next(iter(resp.json().values()))["message"]


def test_an_aggregate_with_hosts_is_not_deleted(cluster: Cluster, rack: dict) -> None:
    path = f"/os-aggregates/{rack['id']}"
    call(cluster, "POST", f"{path}/action", {"add_host": {"host": "host1"}})
    call(cluster, "POST", f"{path}/action", {"add_host": {"host": "host1"}}, status=409)
    refused = call(cluster, "DELETE", path, status=400)
    assert "still has hosts (host1)" in refused["badRequest"]["message"]
