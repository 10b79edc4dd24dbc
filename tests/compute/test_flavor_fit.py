"""Issue 18 item 9: an image the flavor cannot hold is refused at `POST /servers` with Nova's
400 and message, before an instance exists or a byte is fetched; one that fits is accepted.

Real chute-api and chute-compute; the images' min_ram/min_disk are set at creation and the
virtual size comes from a real qcow2 header (qemu-img), as the image service records it.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import requests

from tests.helpers.disks import make_qcow2
from tests.helpers.images import upload_image
from tests.helpers.servers import base_dir, boot, transfers_logged, wait_built

GiB = 1 << 30
MEMORY = "Flavor's memory is too small for requested image."


@pytest.fixture
def compute(shared_api, start_compute):
    return start_compute(shared_api)


def refused(compute, image_id: str, flavor: str) -> str:
    resp = requests.post(compute.url + "/v2.1/servers", timeout=10, json={
        "server": {"name": "too-big", "imageRef": image_id, "flavorRef": flavor}})
    assert resp.status_code == 400, resp.text
    body = resp.json()
    assert list(body) == ["badRequest"] and body["badRequest"]["code"] == 400, body
    return str(body["badRequest"]["message"])


def assert_nothing_done(compute) -> None:
    servers = requests.get(compute.url + "/v2.1/servers", timeout=10).json()["servers"]
    assert servers == []
    assert transfers_logged(compute) == 0
    base = base_dir(compute)
    assert not base.exists() or not [p for p in base.iterdir() if not p.name.endswith(".lock")]


def test_min_ram_over_the_flavor_memory_is_refused(shared_api, compute):
    image = upload_image(shared_api, b"\1" * 4096, name="hungry", min_ram=1024)
    assert refused(compute, image["id"], "1") == MEMORY  # m1.tiny: 512 MiB
    assert_nothing_done(compute)
    built = wait_built(compute, boot(compute, image["id"], flavor="2")["id"])  # 2048 MiB
    assert built["status"] == "ACTIVE", built


def test_min_ram_equal_to_the_flavor_memory_fits(shared_api, compute):
    image = upload_image(shared_api, b"\1" * 4096, name="exact", min_ram=512, min_disk=1)
    built = wait_built(compute, boot(compute, image["id"], flavor="1")["id"])
    assert built["status"] == "ACTIVE", built


def test_min_disk_over_the_flavor_disk_is_refused(shared_api, compute):
    image = upload_image(shared_api, b"\1" * 4096, name="wide", min_disk=2)
    assert refused(compute, image["id"], "1") == (
        "Flavor's disk is smaller than the minimum size specified in image metadata. "
        f"Flavor disk is {GiB} bytes, minimum size is {2 * GiB} bytes.")
    assert_nothing_done(compute)


def test_virtual_size_over_the_flavor_disk_is_refused(shared_api, compute, tmp_path: Path):
    disk = make_qcow2(tmp_path / "big.qcow2", "2G", data_mb=1)
    image = upload_image(shared_api, disk, disk_format="qcow2", name="big-virtual")
    assert image["virtual_size"] == 2 * GiB and image["size"] < GiB
    assert refused(compute, image["id"], "1") == (
        "Flavor's disk is too small for requested image. Flavor disk is "
        f"{GiB} bytes, image is {2 * GiB} bytes.")
    assert_nothing_done(compute)
    built = wait_built(compute, boot(compute, image["id"], flavor="2")["id"])  # 20 GiB
    assert built["status"] == "ACTIVE", built
