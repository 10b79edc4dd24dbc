"""Nova 2.81 pre-caching across the namespaced hosts: an aggregate of the three hosts fetches
a new image into each `_base` (by file where mounted, over HTTP on the mountless host), and a
storm of 24 boots afterwards copies nothing."""

from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor

from tests.helpers.images import upload_image
from tests.helpers.polling import wait_for
from tests.helpers.servers import boot, nova, wait_built

STORM = 24
TRANSFERRED = "Successfully transferred using"


def _cached_everywhere(cluster, image_id):
    hosts = cluster.compute_api.hosts()
    return all(image_id in json.loads(hosts[name]["cached_images_json"] or "[]")
               for name in cluster.agents)


def test_after_precaching_the_aggregate_a_storm_transfers_nothing(cluster):
    api = cluster.compute_api
    image = upload_image(cluster.api, os.urandom(2 * 1024 * 1024))["id"]
    made = nova(api, "POST", "/os-aggregates", json={"aggregate": {"name": "all-hosts"}})
    assert made.status_code == 200, made.text
    aggregate = made.json()["aggregate"]["id"]
    for name in cluster.agents:
        added = nova(api, "POST", f"/os-aggregates/{aggregate}/action",
                     json={"add_host": {"host": name}})
        assert added.status_code == 200, added.text
    offsets = {name: len(agent.log_text()) for name, agent in cluster.agents.items()}
    asked = nova(api, "POST", f"/os-aggregates/{aggregate}/images",
                 json={"cache": [{"id": image}]}, version="2.81")
    assert asked.status_code == 202, asked.text
    wait_for(lambda: _cached_everywhere(cluster, image), 60, "every host to report the image")
    for name, agent in cluster.agents.items():
        way = "http" if agent.mountpoint is None else "file"
        assert f"{TRANSFERRED} {way}" in agent.log_text()[offsets[name]:], name

    offsets = {name: len(agent.log_text()) for name, agent in cluster.agents.items()}
    with ThreadPoolExecutor(8) as pool:
        ids = list(pool.map(lambda n: boot(api, image, f"cached-{n}")["id"], range(STORM)))
    built = [wait_built(api, server_id, timeout=120) for server_id in ids]
    assert [s["status"] for s in built] == ["ACTIVE"] * STORM, [s.get("fault") for s in built]
    for name, agent in cluster.agents.items():
        assert TRANSFERRED not in agent.log_text()[offsets[name]:], name
    assert {s["chute:image_transfer"]["method"] for s in built} == {"cache"}
    for server_id in ids:
        assert nova(api, "DELETE", f"/servers/{server_id}").status_code == 204
    wait_for(lambda: all(nova(api, "GET", f"/servers/{i}").status_code == 404 for i in ids),
             60, "the servers to be gone (their room free for the next test)")
