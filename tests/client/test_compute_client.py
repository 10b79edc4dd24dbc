"""chute.client.compute.ComputeClient against a real chute-compute (and chute-api)."""

from __future__ import annotations

import io
import os
import time

import pytest

from chute.client.compute import ComputeClient
from chute.client.images import ImageClient
from chute.errors import RemoteError, RemoteUnavailable


def test_servers_and_flavors(shared_api, start_compute):
    compute = start_compute(shared_api)
    client = ComputeClient(compute.url + "/v2.1/")  # catalog-style endpoint works too
    flavors = {f["id"]: f for f in client.flavors()}
    assert flavors["2"]["name"] == "m1.small" and flavors["2"]["ram"] == 2048
    assert client.flavor("2")["disk"] == 20
    with pytest.raises(RemoteError) as info:
        client.flavor("99")
    assert info.value.status == 404 and "99" in info.value.message  # Nova's nested body

    images = ImageClient(shared_api.url)
    data = os.urandom(1024 * 1024)
    image = images.create(name="cc", disk_format="raw", container_format="bare")
    images.upload(image["id"], io.BytesIO(data), len(data))

    server = client.boot("cc-vm", image["id"], "1")
    deadline = time.monotonic() + 60
    while client.get(server["id"])["status"] == "BUILD" and time.monotonic() < deadline:
        time.sleep(0.2)
    detail = client.get(server["id"])
    assert detail["status"] == "ACTIVE", detail
    assert detail["image"]["id"] == image["id"]
    assert [s["id"] for s in client.list(detail=False)] == [server["id"]]
    assert client.list()[0]["status"] == "ACTIVE"

    with pytest.raises(RemoteError) as info:
        client.boot("bad", image["id"], "99")
    assert info.value.status in (400, 404) and "\n" not in info.value.message

    client.delete(server["id"])
    with pytest.raises(RemoteError) as info:
        client.get(server["id"])
    assert info.value.status == 404 and server["id"] in info.value.message


def test_unreachable_compute():
    with pytest.raises(RemoteUnavailable, match="cannot reach http://127.0.0.1:9"):
        ComputeClient("http://127.0.0.1:9").list()
