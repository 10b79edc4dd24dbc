"""One topology for the module: chute-api on the bridge, three hosts in namespaces (two
mounting the store, each at its own path; the last mounting nothing)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from chute.host_namespaces import Topology
from tests.helpers.netns import HostCompute, add_host, prepare_api_on, topology
from tests.helpers.services import ApiServer

HOSTS = (("h0", True), ("h1", True), ("h2", False))  # (name, mounts the store)


@dataclass
class Standalone:
    """Today's standalone chute-compute on each namespaced host."""

    topo: Topology
    api: ApiServer
    hosts: list[HostCompute]


@pytest.fixture(scope="module")
def standalone(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Standalone]:
    root = tmp_path_factory.mktemp("standalone")
    with topology() as topo:
        api = prepare_api_on(topo, root / "api")
        hosts: list[HostCompute] = []
        try:
            api.start()
            for name, mounted in HOSTS:
                hosts.append(add_host(topo, api, Path(root / "hosts"), name, mounted))
                hosts[-1].start()
            yield Standalone(topo, api, hosts)
        finally:
            for host in hosts:
                host.kill()
            api.kill()
