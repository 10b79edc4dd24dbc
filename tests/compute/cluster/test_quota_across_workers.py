"""A project's quota holds across the compute API's workers: boots sent at once through the load-
balancing front end land on both worker processes, and still no more servers are admitted than
the limit (the count and the rows it admits happen under one database-wide lock: an flock beside
SQLite, an advisory lock on PostgreSQL)."""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from chute.client.images import ImageClient
from tests.helpers.cluster import Cluster, prepare_agent, prepare_compute_api
from tests.helpers.identity import Caller, callers, write_tokens
from tests.helpers.servers import boot_body
from tests.helpers.services import prepare_api

LIMIT = 3
BOOTS = 16


@pytest.fixture(scope="module")
def quota_cluster(tmp_path_factory: pytest.TempPathFactory, database_url: Callable[[], str]
                  ) -> Iterator[tuple[Cluster, str, dict[str, Caller]]]:
    who = callers()
    tokens = write_tokens(tmp_path_factory.mktemp("identity") / "tokens", who)
    auth = {"auth_strategy": "tokens", "tokens_file": str(tokens)}
    service = {"service_token": who["service"].token}
    images = prepare_api(tmp_path_factory.mktemp("images"), DEFAULT=auth).start()
    root = tmp_path_factory.mktemp("quota-cluster")
    api = prepare_compute_api(root / "api", images, database_url(), DEFAULT=auth, glance=service,
                              quota={"instances": LIMIT}).start()
    cluster = Cluster(api)
    cluster.agents["host1"] = prepare_agent(root / "host1", "host1", api, images,
                                            DEFAULT=auth, glance=service).start()
    cluster.wait_registered()
    client = ImageClient(images.url, who["member"].token)
    image = client.create(name="quota", disk_format="raw", container_format="bare")
    data = os.urandom(1 << 16)
    client.upload(image["id"], io.BytesIO(data), len(data))
    yield cluster, str(image["id"]), who
    cluster.stop()
    images.kill()


def test_concurrent_boots_on_two_workers_never_pass_the_instances_quota(
        quota_cluster: tuple[Cluster, str, dict[str, Caller]]) -> None:
    cluster, image_id, who = quota_cluster
    headers = {"X-Auth-Token": who["member"].token, "OpenStack-API-Version": "compute 2.79"}

    def one(n: int) -> requests.Response:
        return requests.post(f"{cluster.api.url}/v2.1/servers", headers=headers, timeout=60,
                             json=boot_body(image_id, f"q{n}"))

    with ThreadPoolExecutor(BOOTS) as pool:
        answers = list(pool.map(one, range(BOOTS)))

    accepted = [a for a in answers if a.status_code == 202]
    refused = [a for a in answers if a.status_code == 403]
    assert len(accepted) + len(refused) == BOOTS, [a.text for a in answers]
    assert len(accepted) == LIMIT
    assert all("Quota exceeded for instances" in a.text for a in refused)
    listed = requests.get(f"{cluster.api.url}/v2.1/servers", headers=headers, timeout=30)
    assert len(listed.json()["servers"]) == LIMIT
