"""Two chute-compute-api nodes behind HAProxy on one PostgreSQL database, three agents (fake
driver): a boot storm through the load balancer while one API node is SIGKILLed.

The client retries a boot whose answer was lost only after looking for it by name (as a careful
client does, Nova's create not being idempotent), so every name must end as exactly one server,
ACTIVE, whose guest runs on exactly one host: none lost in the dead node's hands (its scheduling
leases expire and the other node's sweeper places them), none built twice.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests
from sqlalchemy import create_engine, text

from tests.helpers.balancer import Balancer
from tests.helpers.cluster import ComputeApiServer, guests, prepare_agent, prepare_compute_api
from tests.helpers.images import upload_image
from tests.helpers.polling import wait_for
from tests.helpers.postgres import Cluster
from tests.helpers.services import ApiServer, ComputeServer

BOOTS = 24
KILL_AFTER = 4  # boots the first node answers before it is killed
HOSTS = ("host1", "host2", "host3")


def _registered(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return {row.host for row in conn.execute(text("SELECT host FROM hosts"))}
    finally:
        engine.dispose()


@pytest.fixture(scope="module")
def storm_cloud(tmp_path_factory: pytest.TempPathFactory, postgres: Cluster,
                shared_api: ApiServer) -> Iterator[tuple[Balancer, list[ComputeApiServer],
                                                         dict[str, ComputeServer]]]:
    url = postgres.fresh_database("compute_nodes")
    root = tmp_path_factory.mktemp("compute-nodes")
    nodes = [prepare_compute_api(root / f"api{n}", shared_api, database=url,
                                 DEFAULT={"osapi_compute_workers": 1})
             for n in (1, 2)]
    lb = Balancer(root, [f"127.0.0.1:{node.port}" for node in nodes], "/v2.1")
    agents: dict[str, ComputeServer] = {}
    try:
        with ThreadPoolExecutor(2) as pool:  # at once: the schema is created under a lock
            for started in [pool.submit(node.start, timeout=60) for node in nodes]:
                started.result()
        lb.start()
        # The agents report to the load balancer, as they would to a cloud's compute endpoint.
        for host in HOSTS:
            agents[host] = prepare_agent(root / host, host, lb, shared_api).start()  # type: ignore
        wait_for(lambda: set(HOSTS) <= _registered(url), 60, "the three agents to register")
        yield lb, nodes, agents
    finally:
        for agent in agents.values():
            agent.kill()
        lb.stop()
        for node in nodes:
            node.kill()


def _find(lb: Balancer, name: str) -> list[dict[str, Any]]:
    resp = requests.get(f"{lb.url}/v2.1/servers", params={"name": f"^{name}$"}, timeout=10)
    resp.raise_for_status()
    return list(resp.json()["servers"])


def _boot(lb: Balancer, image_id: str, name: str) -> str:
    """Boot `name` once: on a lost answer, look for it before trying again."""
    lost = False

    def attempt() -> str | None:
        nonlocal lost
        try:
            found = _find(lb, name) if lost else []
            if found:
                return str(found[0]["id"])
            lost = True
            resp = requests.post(f"{lb.url}/v2.1/servers", timeout=30, json={
                "server": {"name": name, "imageRef": image_id, "flavorRef": "1"}})
        except requests.RequestException:
            return None
        if resp.status_code != 202:
            assert resp.status_code in (502, 503), resp.text
            return None
        return str(resp.json()["server"]["id"])
    return wait_for(attempt, 120, f"server {name} to be accepted", 0.2)


def _boots_answered(node: ComputeApiServer) -> int:
    return node.log_text().count("POST /v2.1/servers status: 202")


def _status(lb: Balancer, server_id: str) -> str | None:
    try:
        resp = requests.get(f"{lb.url}/v2.1/servers/{server_id}", timeout=10)
    except requests.RequestException:
        return None
    return str(resp.json()["server"]["status"]) if resp.status_code == 200 else None


def test_kill_9_of_a_compute_api_node_during_a_boot_storm_loses_and_duplicates_nothing(
        storm_cloud: tuple[Balancer, list[ComputeApiServer], dict[str, ComputeServer]],
        shared_api: ApiServer) -> None:
    lb, nodes, agents = storm_cloud
    image_id = upload_image(shared_api, os.urandom(1 << 20))["id"]
    names = [f"storm-{n}" for n in range(BOOTS)]
    with ThreadPoolExecutor(6) as pool:
        booted = [pool.submit(_boot, lb, image_id, name) for name in names]
        # Killed once it has answered some boots, others still coming: it dies with servers
        # in every stage (recorded, leased, dispatched), which the other node must finish.
        wait_for(lambda: _boots_answered(nodes[0]) >= KILL_AFTER, 120,
                 "the first node to answer some boots")
        nodes[0].kill()
        ids = [future.result() for future in booted]

    for server_id in ids:
        wait_for(lambda s=server_id: _status(lb, s) not in (None, "BUILD"), 150,
                 f"server {server_id} to leave BUILD")
    assert [_status(lb, server_id) for server_id in ids] == ["ACTIVE"] * BOOTS
    assert [len(_find(lb, name)) for name in names] == [1] * BOOTS, "a boot was duplicated"
    placed = {host: guests(agent) for host, agent in agents.items()}
    for server_id in ids:
        assert sum(server_id in found for found in placed.values()) == 1, (server_id, placed)
    assert sum(len(found) for found in placed.values()) == BOOTS
