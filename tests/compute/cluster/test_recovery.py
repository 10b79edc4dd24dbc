"""Hosts that go away: a disabled or dead host gets no new servers; an agent killed (-9) in
the middle of a build loses that build to another host, and when it comes back it drops its
copy instead of finishing it (no server lost, none twice)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import requests
from sqlalchemy import MetaData, Table, insert, select

from tests.helpers.cluster import Cluster, guests, server_host, start_cluster
from tests.helpers.images import upload_image
from tests.helpers.polling import wait_for
from tests.helpers.servers import boot, nova, server, wait_built
from tests.helpers.services import ApiServer

SPAWN_SECONDS = 2


@pytest.fixture(scope="module")
def slow_cluster(shared_api: ApiServer, tmp_path_factory: pytest.TempPathFactory,
                 database_url: Callable[[], str]) -> Iterator[Cluster]:
    """Three agents whose (fake) guests take SPAWN_SECONDS to spawn: time to kill one."""
    found = start_cluster(tmp_path_factory.mktemp("slow-cluster"), shared_api,
                          database=database_url(),
                          agent_overrides={"fake": {"spawn_seconds": SPAWN_SECONDS}})
    yield found
    found.stop()


@pytest.fixture(scope="module")
def image(shared_api: ApiServer) -> str:
    return str(upload_image(shared_api, os.urandom(1 << 20))["id"])


def all_guests(cluster: Cluster) -> list[str]:
    return [g for agent in cluster.agents.values() for g in guests(agent)]


def test_a_disabled_host_gets_no_new_servers(slow_cluster: Cluster, image: str) -> None:
    slow_cluster.api.set_host("host1", enabled=False)
    try:
        ids = [boot(slow_cluster.api, image, f"disabled-{n}")["id"] for n in range(4)]
        built = [wait_built(slow_cluster.api, server_id) for server_id in ids]
        assert all(s["status"] == "ACTIVE" for s in built), [s.get("fault") for s in built]
        assert {server_host(slow_cluster.api, i) for i in ids} == {"host2", "host3"}
    finally:
        slow_cluster.api.set_host("host1", enabled=True)
    for server_id in ids:
        assert nova(slow_cluster.api, "DELETE", f"/servers/{server_id}").status_code == 204
    wait_for(lambda: not set(ids) & set(all_guests(slow_cluster)), 30, "guests deleted")


def test_an_agent_killed_mid_build_loses_the_build_and_drops_it_on_return(
        slow_cluster: Cluster, image: str) -> None:
    api = slow_cluster.api
    server_id = boot(api, image, "victim")["id"]
    first = wait_for(lambda: (server(api, server_id)["OS-EXT-STS:task_state"] == "spawning"
                              and server_host(api, server_id)), 30, "the build to spawn")
    victim = slow_cluster.agents[first]
    victim.kill()

    built = wait_built(api, server_id, timeout=60)
    assert built["status"] == "ACTIVE", built.get("fault")
    second = server_host(api, server_id)
    assert second not in (None, first)
    assert all_guests(slow_cluster).count(server_id) == 1
    tries = nova(api, "GET", f"/servers/{server_id}/os-instance-actions").json()
    failed = [a for a in tries["instanceActions"] if a["message"] == "Error"]
    assert failed, tries
    event = nova(api, "GET", f"/servers/{server_id}/os-instance-actions/"
                             f"{failed[0]['request_id']}").json()["instanceAction"]["events"][0]
    assert f"host {first}" in event["traceback"], event

    doc = nova(api, "GET", f"/servers/{server_id}").json()["server"]
    assert doc["host_status"] == "UP"
    other = boot(api, image, "after-the-death")["id"]
    assert wait_built(api, other)["status"] == "ACTIVE"
    assert server_host(api, other) != first

    victim.start()
    leftover = Path(victim.instances_path) / server_id
    wait_for(lambda: not leftover.exists(), 30, f"{first} to drop its copy of {server_id}")
    assert server_id not in guests(victim)
    assert all_guests(slow_cluster).count(server_id) == 1
    assert server_host(api, server_id) == second
    assert server(api, server_id)["status"] == "ACTIVE"


def test_servers_of_a_dead_host_show_it_down(slow_cluster: Cluster, image: str) -> None:
    api = slow_cluster.api
    server_id = boot(api, image, "on-a-dying-host")["id"]
    assert wait_built(api, server_id)["status"] == "ACTIVE"
    host = server_host(api, server_id)
    assert host is not None
    agent = slow_cluster.agents[host]
    agent.kill()
    try:
        wait_for(lambda: nova(api, "GET", f"/servers/{server_id}").json()["server"]
                 ["host_status"] == "DOWN", 30, f"{host} to be DOWN")
        late = boot(api, image, "not-on-the-dead-host")["id"]
        assert wait_built(api, late)["status"] == "ACTIVE"
        assert server_host(api, late) != host
        stop = nova(api, "POST", f"/servers/{server_id}/action", json={"os-stop": None})
        assert stop.status_code == 409, stop.text
    finally:
        agent.start()
    wait_for(lambda: nova(api, "GET", f"/servers/{server_id}").json()["server"]
             ["host_status"] == "UP", 30, f"{host} to be UP again")
    assert server(api, server_id)["status"] == "ACTIVE"
    assert server_id in guests(agent)


def test_a_build_dispatched_twice_runs_once(slow_cluster: Cluster, image: str) -> None:
    api = slow_cluster.api
    server_id = boot(api, image, "twice")["id"]
    assert wait_built(api, server_id)["status"] == "ACTIVE"
    host = server_host(api, server_id)
    assert host is not None
    agent = slow_cluster.agents[host]
    doc = {"id": server_id, "name": "twice", "image_id": image, "flavor_id": "1"}
    again = requests.post(f"{agent.url}/internal/v1/builds", json={"instance": doc},
                          timeout=10)
    assert again.status_code == 202, again.text
    assert again.json() == {"started": False}
    assert all_guests(slow_cluster).count(server_id) == 1
    assert server(api, server_id)["status"] == "ACTIVE"


@pytest.fixture(scope="module")
def patient_cluster(shared_api: ApiServer, tmp_path_factory: pytest.TempPathFactory,
                    database_url: Callable[[], str]) -> Iterator[Cluster]:
    """One slow agent of a compute API that waits a minute before declaring a host down."""
    found = start_cluster(tmp_path_factory.mktemp("patient-cluster"), shared_api, hosts=1,
                          database=database_url(),
                          agent_overrides={"fake": {"spawn_seconds": SPAWN_SECONDS}},
                          DEFAULT={"service_down_time": 60})
    yield found
    found.stop()


def test_an_agent_back_in_time_finishes_the_build_it_was_sent(patient_cluster: Cluster,
                                                              image: str) -> None:
    api, agent = patient_cluster.api, patient_cluster.agents["host1"]
    server_id = boot(api, image, "resumed")["id"]
    wait_for(lambda: server(api, server_id)["OS-EXT-STS:task_state"] == "spawning", 30,
             "the build to spawn")
    agent.kill()
    agent.start()
    built = wait_built(api, server_id, timeout=60)
    assert built["status"] == "ACTIVE", built.get("fault")
    assert guests(agent) == {server_id}
    assert "build (re)started at the compute API's request" in agent.log_text()


def test_a_server_recorded_without_its_placement_is_placed_by_the_sweeper(
        slow_cluster: Cluster, image: str) -> None:
    """What a compute API process leaves when it dies between recording a server and adding
    its placement row: a server in BUILD nobody places. Another process's sweeper does."""
    api = slow_cluster.api
    model = boot(api, image, "model")["id"]
    assert wait_built(api, model)["status"] == "ACTIVE"
    orphan = str(uuid.uuid4())
    instances = Table("instances", MetaData(), autoload_with=api.engine)
    with api.engine.begin() as conn:
        row = dict(conn.execute(select(instances).where(instances.c.id == model)).one()
                   ._mapping)
        row.update(id=orphan, name="orphan", vm_state="building", task_state="scheduling",
                   power_state=0, launched_at=None, transfer_method=None, networks="none",
                   network_name=None, fixed_ip=None, mac_address=None, bridge=None,
                   created=row["created"] - timedelta(minutes=5))
        conn.execute(insert(instances).values(**row))
    built = wait_built(api, orphan, timeout=60)
    assert built["status"] == "ACTIVE", built.get("fault")
    assert all_guests(slow_cluster).count(orphan) == 1
    assert "was recorded without a placement" in api.log_path.read_text()


def test_a_server_deleted_while_its_host_is_down_loses_its_guest_when_the_host_returns(
        slow_cluster: Cluster, image: str) -> None:
    api = slow_cluster.api
    server_id = boot(api, image, "deleted-while-away")["id"]
    assert wait_built(api, server_id)["status"] == "ACTIVE"
    host = server_host(api, server_id)
    assert host is not None
    agent = slow_cluster.agents[host]
    agent.kill()
    wait_for(lambda: nova(api, "GET", f"/servers/{server_id}").json()["server"]
             ["host_status"] == "DOWN", 30, f"{host} to be DOWN")
    assert nova(api, "DELETE", f"/servers/{server_id}").status_code == 204
    assert nova(api, "GET", f"/servers/{server_id}").status_code == 404
    assert server_id in guests(agent)  # its host did not hear of it yet

    agent.start()
    leftover = Path(agent.instances_path) / server_id
    wait_for(lambda: not leftover.exists(), 30, f"{host} to destroy the guest and its files")
    assert server_id not in guests(agent)
