"""kill -9 of one namespaced agent in the middle of its builds: every server still ends
ACTIVE on another host or in ERROR naming the dead one; none is lost, none runs twice; new
boots avoid the dead host; when it comes back it keeps no copy of what moved away."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

from tests.helpers.cluster import guests, server_host
from tests.helpers.images import upload_image
from tests.helpers.polling import wait_for
from tests.helpers.servers import boot, nova, server, wait_built

BOOTS = 6


def _spawning_host(cluster, ids):
    for server_id in ids:
        doc = server(cluster.compute_api, server_id)
        if doc["OS-EXT-STS:task_state"] == "spawning":
            return server_host(cluster.compute_api, server_id)
    return None


def _copies(cluster, server_id):
    return sum(server_id in guests(agent) for agent in cluster.agents.values())


def test_an_agent_killed_mid_build_loses_no_server_and_gets_no_new_one(cluster):
    api = cluster.compute_api
    image = upload_image(cluster.api, os.urandom(1 << 20))["id"]
    with ThreadPoolExecutor(BOOTS) as pool:
        ids = list(pool.map(lambda n: boot(api, image, f"kill-{n}")["id"], range(BOOTS)))
    dead = wait_for(lambda: _spawning_host(cluster, ids), 30, "a build to be spawning")
    victim = cluster.agents[dead]
    victim.kill()

    built = {server_id: wait_built(api, server_id, timeout=90) for server_id in ids}
    listed = {s["id"] for s in nova(api, "GET", "/servers").json()["servers"]}
    assert set(ids) <= listed  # none lost
    for server_id, doc in built.items():
        if doc["status"] == "ERROR":
            assert dead in doc["fault"]["message"], doc["fault"]
            continue
        assert doc["status"] == "ACTIVE", doc
        assert server_host(api, server_id) != dead
        assert sum(server_id in guests(a) for n, a in cluster.agents.items() if n != dead) == 1

    after = [boot(api, image, f"after-{n}")["id"] for n in range(3)]
    for server_id in after:
        assert wait_built(api, server_id, timeout=60)["status"] == "ACTIVE"
        assert server_host(api, server_id) != dead

    victim.start()
    moved = [i for i in ids if built[i]["status"] == "ACTIVE"]
    wait_for(lambda: all(_copies(cluster, i) == 1 for i in moved), 60,
             f"{dead} to drop its copies of the servers that moved")
    for server_id in ids + after:
        assert nova(api, "DELETE", f"/servers/{server_id}").status_code == 204
    wait_for(lambda: not any(_copies(cluster, i) for i in ids + after), 60, "guests deleted")
