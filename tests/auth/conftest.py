"""One cloud in `auth_strategy = tokens` for the module's tests: chute-api and chute-compute
(real processes) reading one tokens file, with project proj-a's images and server in place."""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import requests

from chute.client.images import ImageClient
from tests.helpers.identity import Caller, callers, write_tokens
from tests.helpers.servers import boot_and_wait
from tests.helpers.services import ApiServer, ComputeServer, prepare_api, prepare_compute

DATA = b"\x5a" * 65536


@dataclass(frozen=True)
class Cloud:
    api: ApiServer
    compute: ComputeServer
    callers: dict[str, Caller]
    private: str  # proj-a's private image
    shared: str  # proj-a's shared image: proj-m a pending member, proj-n an accepted one
    server: str  # proj-a's server, booted by its member from the private image


@dataclass(frozen=True)
class As:
    """A compute endpoint as one caller reaches it (tests.helpers.servers reads `token`)."""

    url: str
    token: str | None


def _image(client: ImageClient, visibility: str) -> str:
    image = client.create(name=f"a-{visibility}", disk_format="raw", container_format="bare",
                          visibility=visibility)
    client.upload(image["id"], io.BytesIO(DATA), len(DATA))
    return str(image["id"])


def _share(api: ApiServer, image_id: str, owner: Caller, member: Caller, status: str) -> None:
    url = f"{api.url}/v2/images/{image_id}/members"
    added = requests.post(url, json={"member": member.project}, headers=owner.headers(),
                          timeout=10)
    assert added.status_code == 200, added.text
    if status != "pending":
        answered = requests.put(f"{url}/{member.project}", json={"status": status},
                                headers=member.headers(), timeout=10)
        assert answered.status_code == 200, answered.text


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cloud]:
    who = callers()
    tokens = write_tokens(tmp_path_factory.mktemp("identity") / "tokens", who)
    auth = {"auth_strategy": "tokens", "tokens_file": str(tokens)}
    api = prepare_api(tmp_path_factory.mktemp("api"), DEFAULT=auth).start()
    compute = prepare_compute(tmp_path_factory.mktemp("compute"), api, DEFAULT=auth,
                              glance={"service_token": who["service"].token}).start()
    try:
        member = who["member"]
        client = ImageClient(api.url, member.token)
        private, shared = _image(client, "private"), _image(client, "shared")
        _share(api, shared, member, who["pending"], "pending")
        _share(api, shared, member, who["accepted"], "accepted")
        server = boot_and_wait(As(compute.url, member.token), private, timeout=60)
        assert server["status"] == "ACTIVE", server.get("fault")
        yield Cloud(api, compute, who, private, shared, server["id"])
    finally:
        compute.kill()
        api.kill()
