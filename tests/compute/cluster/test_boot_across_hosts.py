"""Boots through chute-compute-api land on agents, spread over the hosts, and go ACTIVE."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import requests

from tests.helpers.cluster import Cluster, guests, server_host
from tests.helpers.images import upload_image
from tests.helpers.polling import wait_for
from tests.helpers.servers import action, boot, console_output, nova, wait_built, wait_status
from tests.helpers.services import ApiServer


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
    host = doc["OS-EXT-SRV-ATTR:host"]
    assert host in cluster.agents
    assert doc["hostId"] == hashlib.sha224(f"{doc['tenant_id']}{host}".encode()).hexdigest()
    old = nova(cluster.api, "GET", f"/servers/{server_id}", version="2.15").json()["server"]
    assert "host_status" not in old


def test_actions_and_delete_reach_the_servers_host(cluster: Cluster, image_id: str) -> None:
    server_id = boot(cluster.api, image_id, "acted")["id"]
    assert wait_built(cluster.api, server_id)["status"] == "ACTIVE"
    host = server_host(cluster.api, server_id)
    assert host is not None
    agent = cluster.agents[host]

    assert action(cluster.api, server_id, {"os-stop": None}).status_code == 202
    wait_status(cluster.api, server_id, "SHUTOFF")
    again = action(cluster.api, server_id, {"os-stop": None})
    assert again.status_code == 409, again.text
    assert "vm_state stopped" in again.json()["conflictingRequest"]["message"]
    assert action(cluster.api, server_id, {"os-start": None}).status_code == 202
    wait_status(cluster.api, server_id, "ACTIVE")
    assert action(cluster.api, server_id, {"reboot": {"type": "HARD"}}).status_code == 202
    wait_status(cluster.api, server_id, "ACTIVE")
    assert "rebooted (hard)" in console_output(cluster.api, server_id)
    unknown = action(cluster.api, server_id, {"os-explode": None})
    assert unknown.status_code == 400, unknown.text
    done = nova(cluster.api, "GET", f"/servers/{server_id}/os-instance-actions").json()
    assert [a["action"] for a in done["instanceActions"]] == ["reboot", "start", "stop",
                                                              "create"]
    assert {a["message"] for a in done["instanceActions"]} == {None}

    assert nova(cluster.api, "DELETE", f"/servers/{server_id}").status_code == 204
    assert server_id not in guests(agent)
    assert not (Path(agent.instances_path) / server_id).exists()
    assert nova(cluster.api, "GET", f"/servers/{server_id}").status_code == 404
    after = nova(cluster.api, "GET", f"/servers/{server_id}/os-instance-actions").json()
    deleted = after["instanceActions"][0]
    assert deleted["action"] == "delete"  # its actions outlive the server (Nova 2.21)
    detail = nova(cluster.api, "GET", f"/servers/{server_id}/os-instance-actions/"
                                      f"{deleted['request_id']}").json()["instanceAction"]
    assert detail["events"][0]["result"] == "Success"


def test_the_agent_serves_no_servers_api(cluster: Cluster) -> None:
    agent = next(iter(cluster.agents.values()))
    assert requests.get(f"{agent.url}/v2.1/servers", timeout=10).status_code == 404


def test_a_precached_image_is_in_the_hosts_next_heartbeat(cluster: Cluster,
                                                           shared_api: ApiServer) -> None:
    image = str(upload_image(shared_api, os.urandom(1 << 20))["id"])
    agent = cluster.agents["host2"]
    resp = requests.post(f"{agent.url}/internal/v1/images/{image}/precache", timeout=10)
    assert resp.status_code == 202, resp.text
    wait_for(lambda: image in json.loads(cluster.api.hosts()["host2"]["cached_images_json"]),
             30, "host2 to report the image in its _base")
    assert image not in json.loads(cluster.api.hosts()["host1"]["cached_images_json"])
