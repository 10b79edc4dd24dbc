"""Boots through chute-compute-api land on agents, spread over the hosts, and go ACTIVE."""

from __future__ import annotations

from tests.helpers.cluster import Cluster, guests, server_host
from tests.helpers.servers import boot, nova, wait_built


def test_boots_spread_over_the_hosts_and_go_active(cluster: Cluster, image_id: str) -> None:
    ids = [boot(cluster.api, image_id, f"spread-{n}")["id"] for n in range(6)]
    servers = [wait_built(cluster.api, server_id) for server_id in ids]
    assert [s["status"] for s in servers] == ["ACTIVE"] * 6, [s.get("fault") for s in servers]
    hosts = {server_id: server_host(cluster.api, server_id) for server_id in ids}
    assert set(hosts.values()) == set(cluster.agents), hosts
    for server_id, host in hosts.items():
        assert host is not None
        assert server_id in guests(cluster.agents[host])
        others = set(cluster.agents) - {host}
        assert all(server_id not in guests(cluster.agents[o]) for o in others)


def test_server_show_says_the_host_is_up(cluster: Cluster, image_id: str) -> None:
    server_id = boot(cluster.api, image_id, "status")["id"]
    wait_built(cluster.api, server_id)
    doc = nova(cluster.api, "GET", f"/servers/{server_id}").json()["server"]
    assert doc["host_status"] == "UP"
    assert doc["OS-EXT-SRV-ATTR:host"] in cluster.agents
    old = nova(cluster.api, "GET", f"/servers/{server_id}", version="2.15").json()["server"]
    assert "host_status" not in old
