"""Issue 13's storm: 24 boots of one new image through the compute API spread over the three
namespaced hosts, every server ACTIVE, at most one transfer per host: by file where the host
mounts the store, over HTTP on the host that mounts nothing."""

from __future__ import annotations

import os
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

from tests.helpers.cluster import server_host
from tests.helpers.images import upload_image
from tests.helpers.polling import wait_for
from tests.helpers.servers import boot, nova, wait_built

STORM = 24
TRANSFERRED = "Successfully transferred using"


def test_a_storm_spreads_over_the_hosts_with_one_transfer_each(cluster):
    image = upload_image(cluster.api, os.urandom(4 * 1024 * 1024))
    offsets = {name: len(agent.log_text()) for name, agent in cluster.agents.items()}
    with ThreadPoolExecutor(8) as pool:
        ids = list(pool.map(lambda n: boot(cluster.compute_api, image["id"], f"storm-{n}")["id"],
                            range(STORM)))
    built = [wait_built(cluster.compute_api, server_id, timeout=120) for server_id in ids]
    assert [s["status"] for s in built] == ["ACTIVE"] * STORM, [s.get("fault") for s in built]
    placed = Counter(server_host(cluster.compute_api, server_id) for server_id in ids)
    assert set(placed) == set(cluster.agents), placed
    for name, agent in cluster.agents.items():
        log = agent.log_text()[offsets[name]:]
        assert log.count(TRANSFERRED) == 1, (name, log[-2000:])
        way = "http" if agent.mountpoint is None else "file"
        assert f"{TRANSFERRED} {way}" in log, (name, log[-2000:])
    api = cluster.compute_api
    for server_id in ids:
        assert nova(api, "DELETE", f"/servers/{server_id}").status_code == 204
    wait_for(lambda: all(nova(api, "GET", f"/servers/{i}").status_code == 404 for i in ids),
             60, "the servers to be gone (their room free for the next test)")
