"""A build that fails on a host is tried on another, each try's fault kept in the server's
instance actions; when no host is left, the server is ERROR with a fault naming the hosts."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

import pytest

from tests.helpers.cluster import Cluster, guests, prepare_agent, prepare_compute_api
from tests.helpers.images import upload_image
from tests.helpers.servers import boot, nova, wait_built
from tests.helpers.services import ApiServer, free_port


@pytest.fixture(scope="module")
def half_broken(shared_api: ApiServer, tmp_path_factory: pytest.TempPathFactory,
                database_url: Callable[[], str]) -> Iterator[Cluster]:
    """host1 and host2 cannot reach the image service (every build fails there); host3 can."""
    root = tmp_path_factory.mktemp("half-broken")
    api = prepare_compute_api(root / "api", shared_api, database_url()).start()
    found = Cluster(api)
    nowhere = {"api_servers": f"http://127.0.0.1:{free_port()}"}
    for name in ("host1", "host2", "host3"):
        glance = nowhere if name != "host3" else {}
        found.agents[name] = prepare_agent(root / name, name, api, shared_api,
                                           glance=glance).start()
    found.wait_registered()
    yield found
    found.stop()


@pytest.fixture(scope="module")
def image(shared_api: ApiServer) -> str:
    return str(upload_image(shared_api, os.urandom(1 << 20))["id"])


def faults_of_tries(cluster: Cluster, server_id: str) -> list[str]:
    listed = nova(cluster.api, "GET", f"/servers/{server_id}/os-instance-actions").json()
    found = []
    for action in listed["instanceActions"]:
        if action["message"] == "Error":
            one = nova(cluster.api, "GET", f"/servers/{server_id}/os-instance-actions/"
                                           f"{action['request_id']}").json()
            found.append(one["instanceAction"]["events"][0]["traceback"])
    return found


def test_failed_builds_end_on_the_host_that_works(half_broken: Cluster, image: str) -> None:
    ids = [boot(half_broken.api, image, f"retried-{n}")["id"] for n in range(3)]
    for server_id in ids:
        built = wait_built(half_broken.api, server_id)
        assert built["status"] == "ACTIVE", built.get("fault")
        assert half_broken.api.placement(server_id)["host"] == "host3"
    assert set(ids) <= guests(half_broken.agents["host3"])
    tries = [fault for server_id in ids for fault in faults_of_tries(half_broken, server_id)]
    assert tries, "at least one build should have been tried on a broken host first"
    assert all("Build on host host1 failed" in t or "Build on host host2 failed" in t
               for t in tries), tries


def test_no_host_left_is_error_naming_the_hosts_tried(half_broken: Cluster,
                                                      image: str) -> None:
    half_broken.api.set_host("host3", enabled=False)
    try:
        server_id = boot(half_broken.api, image, "doomed")["id"]
        built = wait_built(half_broken.api, server_id)
    finally:
        half_broken.api.set_host("host3", enabled=True)
    assert built["status"] == "ERROR"
    message = built["fault"]["message"]
    assert "No valid host was found" in message
    assert "host1" in message and "host2" in message, message
    assert len(faults_of_tries(half_broken, server_id)) >= 2
    assert not any(server_id in guests(agent) for agent in half_broken.agents.values())
    assert nova(half_broken.api, "DELETE", f"/servers/{server_id}").status_code == 204
