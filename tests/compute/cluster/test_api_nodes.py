"""Two chute-compute-api nodes (two workers each) on one compute database place concurrent
boots through the same conditional UPDATEs: every server on exactly one host, each host's
recorded usage exactly the servers placed on it."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.helpers.cluster import Cluster, guests, prepare_agent, prepare_compute_api
from tests.helpers.images import upload_image
from tests.helpers.servers import boot, wait_built
from tests.helpers.services import ApiServer

BOOTS = 12
FLAVOR_VCPUS, FLAVOR_RAM = 1, 512  # flavor "1" (m1.tiny)


@pytest.fixture(scope="module")
def two_nodes(shared_api: ApiServer, tmp_path_factory: pytest.TempPathFactory,
              database_url: Callable[[], str]) -> Iterator[tuple[Cluster, Cluster]]:
    root = tmp_path_factory.mktemp("two-nodes")
    first = prepare_compute_api(root / "api1", shared_api, database_url()).start()
    second = prepare_compute_api(root / "api2", shared_api, first.database).start()
    cluster = Cluster(first)
    for name in ("host1", "host2", "host3"):
        # Each agent reports to one node; both nodes see every host in the database.
        node = first if name != "host3" else second
        cluster.agents[name] = prepare_agent(root / name, name, node, shared_api).start()
    cluster.wait_registered()
    yield cluster, Cluster(second, cluster.agents)
    second.kill()
    cluster.stop()


def test_concurrent_boots_through_two_nodes_are_each_placed_once(
        two_nodes: tuple[Cluster, Cluster], shared_api: ApiServer) -> None:
    one, two = two_nodes
    image = str(upload_image(shared_api, os.urandom(1 << 20))["id"])
    nodes = [one.api, two.api]
    with ThreadPoolExecutor(8) as pool:
        ids = list(pool.map(lambda n: boot(nodes[n % 2], image, f"node-{n}")["id"],
                            range(BOOTS)))
    built = [wait_built(nodes[n % 2], server_id) for n, server_id in enumerate(ids)]
    assert [s["status"] for s in built] == ["ACTIVE"] * BOOTS, [s.get("fault") for s in built]

    placed = {server_id: one.api.placement(server_id)["host"] for server_id in ids}
    for server_id, host in placed.items():
        holders = [name for name, agent in one.agents.items() if server_id in guests(agent)]
        assert holders == [host], (server_id, holders)
    for name, row in one.api.hosts().items():
        count = sum(1 for host in placed.values() if host == name)
        assert (row["vcpus_used"], row["memory_mb_used"], row["running_instances"]) == \
            (count * FLAVOR_VCPUS, count * FLAVOR_RAM, count), name
