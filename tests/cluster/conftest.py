"""One namespaced cluster for tests/cluster/: chute-api and chute-compute-api on the bridge,
three agents each in its own network and mount namespace (h1 and h2 mounting the store, each
at its own path; h3 mounting nothing)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from chute.host_namespaces import Topology
from tests.helpers.cluster import ComputeApiServer, prepare_compute_api
from tests.helpers.netns import HostCompute, add_host, prepare_api_on, topology
from tests.helpers.polling import wait_for
from tests.helpers.services import ApiServer

HOSTS = (("h1", True), ("h2", True), ("h3", False))  # (name, mounts the store)
MOUNTLESS = "h3"
SPAWN_SECONDS = 1.0  # a fake guest's spawn: time to kill an agent in the middle of a build
RAM_RATIO = 0.0064  # of the fake driver's 800000 MB: 5120 MB, ten m1.tiny per host


@dataclass
class NamespacedCluster:
    topo: Topology
    api: ApiServer
    compute_api: ComputeApiServer
    agents: dict[str, HostCompute] = field(default_factory=dict)

    def wait_registered(self, timeout: float = 30) -> None:
        wait_for(lambda: set(self.agents) <= set(self.compute_api.hosts()), timeout,
                 "every host to register")


def prepare_compute_api_on(topo: Topology, root: Path, api: ApiServer) -> ComputeApiServer:
    """The compute API on the bridge address, where the agents in their namespaces reach it."""
    server = prepare_compute_api(root, api, DEFAULT={"bind_host": topo.gateway,
                                                     "auth_strategy": "noauth"},
                                 quota={"instances": -1, "cores": -1, "ram": -1})
    server.url = f"http://{topo.gateway}:{server.port}"
    return server


@pytest.fixture(scope="package")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NamespacedCluster]:
    root = tmp_path_factory.mktemp("cluster")
    with topology() as topo:
        api = prepare_api_on(topo, root / "api")
        compute_api = prepare_compute_api_on(topo, root / "compute-api", api)
        found = NamespacedCluster(topo, api, compute_api)
        try:
            api.start()
            compute_api.start()
            for name, mounted in HOSTS:
                agent = add_host(topo, api, root / "hosts", name, mounted,
                                 DEFAULT={"host": name, "report_interval": 1,
                                          "ram_allocation_ratio": RAM_RATIO},
                                 compute_api={"url": compute_api.url},
                                 fake={"spawn_seconds": SPAWN_SECONDS})
                found.agents[name] = agent.start()
            found.wait_registered()
            yield found
        finally:
            for agent in found.agents.values():
                agent.kill()
            compute_api.kill()
            api.kill()


