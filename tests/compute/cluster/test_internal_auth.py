"""With auth on, the internal endpoints are the services' only: the agent registers and
reports with its service token, a user's token is refused (403), no token is 401."""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import requests

from chute.client.images import ImageClient
from tests.helpers.cluster import Cluster, prepare_agent, prepare_compute_api
from tests.helpers.identity import Caller, callers, write_tokens
from tests.helpers.servers import boot, wait_built
from tests.helpers.services import prepare_api

DATA = os.urandom(1 << 20)


@dataclass(frozen=True)
class Endpoint:
    """An API as one caller uses it (tests/helpers/servers.py sends `token`)."""

    url: str
    token: str | None


@pytest.fixture(scope="module")
def who() -> dict[str, Caller]:
    return callers()


@pytest.fixture(scope="module")
def authed_cluster(tmp_path_factory: pytest.TempPathFactory, who: dict[str, Caller]
                   ) -> Iterator[tuple[Cluster, str]]:
    tokens = write_tokens(tmp_path_factory.mktemp("identity") / "tokens", who)
    auth = {"auth_strategy": "tokens", "tokens_file": str(tokens)}
    service = {"service_token": who["service"].token}
    images = prepare_api(tmp_path_factory.mktemp("images"), DEFAULT=auth).start()
    root = tmp_path_factory.mktemp("authed-cluster")
    api = prepare_compute_api(root / "api", images, DEFAULT=auth, glance=service).start()
    found = Cluster(api)
    found.agents["host1"] = prepare_agent(root / "host1", "host1", api, images, DEFAULT=auth,
                                          glance=service).start()
    found.wait_registered()
    client = ImageClient(images.url, who["member"].token)
    image = client.create(name="authed", disk_format="raw", container_format="bare")
    client.upload(image["id"], io.BytesIO(DATA), len(DATA))
    yield found, str(image["id"])
    found.stop()
    images.kill()


def test_a_user_boots_through_the_agent_that_reports_as_a_service(
        authed_cluster: tuple[Cluster, str], who: dict[str, Caller]) -> None:
    cluster, image_id = authed_cluster
    as_member = Endpoint(cluster.api.url, who["member"].token)
    built = wait_built(as_member, boot(as_member, image_id, "authed")["id"])
    assert built["status"] == "ACTIVE", built.get("fault")


@pytest.mark.parametrize("caller, status", [("member", 403), ("admin", 403),
                                            ("anonymous", 401)])
def test_internal_endpoints_refuse_all_but_services(
        authed_cluster: tuple[Cluster, str], who: dict[str, Caller], caller: str,
        status: int) -> None:
    cluster, image_id = authed_cluster
    agent = cluster.agents["host1"]
    headers = who[caller].headers()
    heartbeat = requests.put(f"{cluster.api.url}/internal/v1/hosts/intruder", json={},
                             headers=headers, timeout=10)
    assert heartbeat.status_code == status, heartbeat.text
    build = requests.post(f"{agent.url}/internal/v1/builds", json={}, headers=headers,
                          timeout=10)
    assert build.status_code == status, build.text
    outcome = requests.put(f"{cluster.api.url}/internal/v1/hosts/host1/precache/{image_id}",
                           json={"request_id": "r", "status": "failed", "detail": "forged"},
                           headers=headers, timeout=10)
    assert outcome.status_code == status, outcome.text
    states = requests.put(f"{cluster.api.url}/internal/v1/hosts/host1/states",
                          json={"states": []}, headers=headers, timeout=10)
    assert states.status_code == status, states.text
    assert "intruder" not in cluster.api.hosts()
