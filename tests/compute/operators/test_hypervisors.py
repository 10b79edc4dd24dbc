"""os-hypervisors on chute-compute-api: each host's resources and usage as its agent reports
them and its servers use them, Nova's shapes per microversion."""

from __future__ import annotations

from tests.helpers.cluster import Cluster, server_host
from tests.helpers.servers import boot, nova, wait_built


def detail(cluster: Cluster, version: str = "2.53") -> dict[str, dict]:
    resp = nova(cluster.api, "GET", "/os-hypervisors/detail", version)
    assert resp.status_code == 200, resp.text
    return {h["hypervisor_hostname"]: h for h in resp.json()["hypervisors"]}


def test_usage_follows_the_servers_placed(cluster: Cluster, image_id: str) -> None:
    before = detail(cluster)
    server_id = boot(cluster.api, image_id, "usage")["id"]
    assert wait_built(cluster.api, server_id)["status"] == "ACTIVE"
    host = server_host(cluster.api, server_id)
    assert host is not None
    flavor = nova(cluster.api, "GET", "/flavors/1").json()["flavor"]
    after = detail(cluster)[host]
    assert after["memory_mb_used"] - before[host]["memory_mb_used"] == flavor["ram"]
    assert after["vcpus_used"] - before[host]["vcpus_used"] == flavor["vcpus"]
    assert after["running_vms"] == before[host]["running_vms"] + 1
    assert after["free_ram_mb"] == after["memory_mb"] - after["memory_mb_used"]
    assert (after["state"], after["status"], after["service"]["host"]) == (
        "up", "enabled", host)
    shown = nova(cluster.api, "GET", f"/os-hypervisors/{after['id']}", "2.53").json()
    assert shown["hypervisor"]["running_vms"] == after["running_vms"]


def test_ids_are_integers_before_2_53_and_uuids_from_it(cluster: Cluster) -> None:
    old = nova(cluster.api, "GET", "/os-hypervisors", None).json()["hypervisors"]
    assert sorted(h["hypervisor_hostname"] for h in old) == ["host1", "host2", "host3"]
    assert all(isinstance(h["id"], int) and set(h) == {
        "id", "hypervisor_hostname", "state", "status"} for h in old)
    shown = nova(cluster.api, "GET", f"/os-hypervisors/{old[0]['id']}", None).json()
    assert isinstance(shown["hypervisor"]["cpu_info"], str)
    assert all(len(h["id"]) == 36 for h in detail(cluster).values())
    assert isinstance(detail(cluster)["host1"]["cpu_info"], dict)


def test_the_list_filters_and_pages_as_nova(cluster: Cluster) -> None:
    one = nova(cluster.api, "GET", "/os-hypervisors?hypervisor_hostname_pattern=host2",
               "2.53").json()["hypervisors"]
    assert [h["hypervisor_hostname"] for h in one] == ["host2"]
    first = nova(cluster.api, "GET", "/os-hypervisors?limit=1", "2.53").json()["hypervisors"]
    rest = nova(cluster.api, "GET", f"/os-hypervisors?marker={first[0]['id']}",
                "2.53").json()["hypervisors"]
    assert len(first) == 1 and len(rest) == 2
    assert first[0]["id"] not in {h["id"] for h in rest}


def test_statistics_sum_every_host(cluster: Cluster) -> None:
    stats = nova(cluster.api, "GET", "/os-hypervisors/statistics").json()
    hosts = detail(cluster).values()
    assert stats["hypervisor_statistics"]["count"] == 3
    assert stats["hypervisor_statistics"]["memory_mb"] == sum(h["memory_mb"] for h in hosts)


def test_an_unknown_hypervisor_is_404_naming_it(cluster: Cluster) -> None:
    resp = nova(cluster.api, "GET", "/os-hypervisors/999", None)
    assert resp.status_code == 404
    assert resp.json()["itemNotFound"]["message"] == "Hypervisor 999 could not be found."
    resp = nova(cluster.api, "GET", "/os-hypervisors?hypervisor_hostname_pattern=zz", "2.53")
    assert resp.status_code == 404
