"""Helpers for compute tests (plain functions, imported as `computeutil`): small real images,
uploads through the real API, booting and waiting over HTTP."""

import hashlib
import json
import subprocess
import time
from pathlib import Path

import requests

from chute.client.images import ImageClient


def make_qcow2(path: Path, virtual: str = "64M", data_mb: int = 4) -> Path:
    """A qcow2 made by qemu-img with `data_mb` MiB written by qemu-io (pattern 0x5a), so the
    image has real clusters, not just a header."""
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(path), virtual], check=True)
    if data_mb:
        subprocess.run(["qemu-io", "-f", "qcow2", "-c", f"write -P 0x5a 0 {data_mb}M",
                        str(path)], check=True, capture_output=True)
    return path


def make_raw(path: Path, size_mb: int = 4) -> Path:
    """A raw image whose every MiB differs, so a shifted or truncated copy shows."""
    with open(path, "wb") as out:
        for n in range(size_mb):
            out.write(hashlib.sha512(str(n).encode()).digest() * (1 << 14))
    return path


def upload(api, path: Path, disk_format: str = "qcow2", name: str = "test-image") -> dict:
    """Upload through the real image API; return the active image document."""
    client = ImageClient(api.url)
    image = client.create(name=name, disk_format=disk_format, container_format="bare")
    with open(path, "rb") as data:
        client.upload(image["id"], data, path.stat().st_size)
    image = client.get(image["id"])
    assert image["status"] == "active", image
    return image


def boot(compute, image_id: str, flavor: str = "1", name: str = "vm") -> dict:
    resp = requests.post(compute.url + "/v2.1/servers",
                         json={"server": {"name": name, "imageRef": image_id,
                                          "flavorRef": flavor}})
    assert resp.status_code == 202, resp.text
    return resp.json()["server"]


def wait_built(compute, server_id: str, timeout: float = 60) -> dict:
    """Poll until the server leaves BUILD; return its document."""
    deadline = time.monotonic() + timeout
    while True:
        server = requests.get(f"{compute.url}/v2.1/servers/{server_id}").json()["server"]
        if server["status"] != "BUILD" or time.monotonic() > deadline:
            return server
        time.sleep(0.05)


def boot_and_wait(compute, image_id: str, flavor: str = "1", name: str = "vm") -> dict:
    return wait_built(compute, boot(compute, image_id, flavor, name)["id"])


def sha1_name(image_id: str) -> str:
    return hashlib.sha1(image_id.encode()).hexdigest()


def sha512_file(path: Path) -> str:
    digest = hashlib.sha512()
    with open(path, "rb") as data:
        while chunk := data.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def qemu_info(path: Path) -> dict:
    out = subprocess.run(["qemu-img", "info", "--output=json", "-U", str(path)],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out)
