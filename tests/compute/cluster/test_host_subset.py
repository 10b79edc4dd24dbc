"""`[filter_scheduler] host_subset_size` (Nova's option) on chute-compute-api: a burst of
concurrent boots spreads over the hosts instead of piling onto the best one, and the recorded
placement says the first host was drawn at random among the best N."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from tests.helpers.cluster import Cluster, server_host, start_cluster
from tests.helpers.images import upload_image
from tests.helpers.polling import wait_for
from tests.helpers.servers import boot, wait_built
from tests.helpers.services import ApiServer

COMPUTE_API = str(Path(sys.executable).parent / "chute-compute-api")
BOOTS = 24


@pytest.fixture(scope="module")
def subset_cluster(shared_api: ApiServer, tmp_path_factory: pytest.TempPathFactory,
                   database_url: Callable[[], str]) -> Iterator[Cluster]:
    found = start_cluster(tmp_path_factory.mktemp("subset"), shared_api,
                          database=database_url(),
                          filter_scheduler={"host_subset_size": 3})
    yield found
    found.stop()


def test_a_burst_of_concurrent_boots_spreads_over_every_host(subset_cluster: Cluster,
                                                             shared_api: ApiServer) -> None:
    """host1 has the image in its _base: by weight alone (host_subset_size = 1) every boot
    of the burst goes there, the others' free RAM barely differing (the fake driver's hosts
    are huge)."""
    cluster = subset_cluster
    image_id = str(upload_image(shared_api, os.urandom(1 << 20), name="burst")["id"])
    resp = requests.post(f"{cluster.agents['host1'].url}/internal/v1/images/{image_id}/precache",
                         timeout=10)
    assert resp.status_code == 202, resp.text
    wait_for(lambda: image_id in json.loads(cluster.api.hosts()["host1"]["cached_images_json"]),
             30, "host1 to report the image in its _base")
    with ThreadPoolExecutor(8) as pool:
        ids = list(pool.map(lambda n: boot(cluster.api, image_id, f"burst-{n}")["id"],
                            range(BOOTS)))
    servers = [wait_built(cluster.api, server_id) for server_id in ids]
    assert [s["status"] for s in servers] == ["ACTIVE"] * BOOTS, [s.get("fault")
                                                                  for s in servers]
    placed = Counter(server_host(cluster.api, server_id) for server_id in ids)
    # by weight alone all 24 went to host1; a uniform draw among 3 leaves a host empty in
    # 3 x (2/3)^24 = 0.2% of bursts
    assert set(placed) == set(cluster.agents), placed
    explained = subprocess.run(
        [COMPUTE_API, "--config-file", str(cluster.api.conf_path), "explain", ids[0]],
        capture_output=True, text=True, check=True, timeout=60).stdout
    assert ("First host drawn at random among the best 3 ([filter_scheduler] "
            "host_subset_size = 3)") in explained
