"""Helpers for the fault-injection tests (plain functions; fixtures stay in tests/conftest.py).

Everything random here is seeded: a failing trial can be replayed from the seed it prints.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import random
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

MiB = 1 << 20
JSON = {"Accept": "application/json"}
SEED = int(os.environ.get("CHUTE_RELIABILITY_SEED", "20261125"))


def rng(name: str) -> random.Random:
    """One independent, reproducible stream per test (the suite seed + the test's name)."""
    return random.Random(f"{SEED}:{name}")


def write_random_file(path: Path, size: int, seed: str) -> Path:
    """`size` bytes of seeded random data: every MiB differs, so a shifted copy shows."""
    gen = random.Random(seed)
    with open(path, "wb") as out:
        left = size
        while left:
            n = min(left, MiB)
            out.write(gen.randbytes(n))
            left -= n
    return path


def digests(path: Path | str) -> dict[str, str]:
    """md5 and sha512 of a file, as the image service records them (checksum, os_hash_value)."""
    md5, sha512 = hashlib.md5(), hashlib.sha512()
    with open(path, "rb") as data:
        while chunk := data.read(4 * MiB):
            md5.update(chunk)
            sha512.update(chunk)
    return {"checksum": md5.hexdigest(), "os_hash_value": sha512.hexdigest()}


def create_image(api: Any, disk_format: str = "raw", **fields: Any) -> dict:
    body = {"disk_format": disk_format, "container_format": "bare", **fields}
    resp = requests.post(api.url + "/v2/images", json=body, headers=JSON, timeout=10)
    assert resp.status_code == 201, resp.text
    return resp.json()


def show_image(api: Any, image_id: str) -> dict:
    resp = requests.get(f"{api.url}/v2/images/{image_id}", headers=JSON, timeout=10)
    assert resp.status_code == 200, resp.text
    return resp.json()


def upload_file(api: Any, image_id: str, path: Path | str, timeout: float = 120
                ) -> requests.Response:
    with open(path, "rb") as data:
        return requests.put(f"{api.url}/v2/images/{image_id}/file", data=data,
                            headers={"Content-Type": "application/octet-stream", **JSON},
                            timeout=timeout)


def upload_image(api: Any, path: Path | str, disk_format: str = "raw") -> dict:
    """Create + upload; return the active image document."""
    image = create_image(api, disk_format=disk_format)
    resp = upload_file(api, image["id"], path)
    assert resp.status_code == 204, resp.text
    image = show_image(api, image["id"])
    assert image["status"] == "active", image
    return image


def open_upload(api: Any, image_id: str, declared: int) -> socket.socket:
    """A raw Content-Length PUT whose head is sent; the caller sends (part of) the body."""
    sock = socket.create_connection(("127.0.0.1", api.port), timeout=30)
    head = (f"PUT /v2/images/{image_id}/file HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Content-Type: application/octet-stream\r\nContent-Length: {declared}\r\n\r\n")
    sock.sendall(head.encode())
    return sock


def open_chunked_upload(api: Any, image_id: str) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", api.port), timeout=30)
    head = (f"PUT /v2/images/{image_id}/file HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            "Content-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\n\r\n")
    sock.sendall(head.encode())
    return sock


def send_chunks(sock: socket.socket, path: Path | str, nbytes: int, chunk: int = MiB) -> None:
    """The first `nbytes` of `path` as 1 MiB chunks; the last one announced whole but cut
    short, so the body ends in the middle of a chunk."""
    with open(path, "rb") as data:
        while nbytes > 0:
            block = data.read(chunk)
            sock.sendall(f"{len(block):x}\r\n".encode() + block[:nbytes])
            if nbytes >= len(block):
                sock.sendall(b"\r\n")
            nbytes -= len(block)


def send_from_file(sock: socket.socket, path: Path | str, nbytes: int) -> int:
    """Send the first `nbytes` of `path` (the kernel copies them: cheap even for 256 MiB)."""
    with open(path, "rb") as data:
        return sock.sendfile(data, 0, nbytes) if nbytes else 0


def open_download(api: Any, image_id: str) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", api.port), timeout=30)
    sock.sendall(f"GET /v2/images/{image_id}/file HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
    return sock


def store_entries(api: Any) -> list[str]:
    return sorted(os.listdir(api.datadir)) if os.path.isdir(api.datadir) else []


def store_leftovers(api: Any, active_ids: set[str]) -> list[str]:
    """Entries of the datadir that are not the file of an active image: temporary files,
    or orphans (a whole-looking file that no image owns)."""
    return [name for name in store_entries(api) if name not in active_ids]


def wait_for(predicate: Callable[[], Any], timeout: float, what: str,
             interval: float = 0.02) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def timed_get(url: str, timeout: float = 10) -> tuple[int, float]:
    started = time.monotonic()
    resp = requests.get(url, headers=JSON, timeout=timeout)
    return resp.status_code, time.monotonic() - started


@contextlib.contextmanager
def small_tmpfs(path: Path, size: str) -> Iterator[Path]:
    """A tmpfs of `size` at `path` (a real filesystem that fills up); skips if mount fails."""
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                          check=False, capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a {size} tmpfs at {path} to fill up "
                    f"(needs root/CAP_SYS_ADMIN): {done.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def free_bytes(path: Path | str) -> int:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


# -- compute -----------------------------------------------------------------------------------

def boot(compute: Any, image_id: str, name: str = "vm") -> dict:
    resp = requests.post(compute.url + "/v2.1/servers",
                         json={"server": {"name": name, "imageRef": image_id, "flavorRef": "1"}},
                         timeout=10)
    assert resp.status_code == 202, resp.text
    return resp.json()["server"]


def server(compute: Any, server_id: str) -> dict:
    resp = requests.get(f"{compute.url}/v2.1/servers/{server_id}", timeout=10)
    assert resp.status_code == 200, resp.text
    return resp.json()["server"]


def wait_built(compute: Any, server_id: str, timeout: float = 60) -> dict:
    """The server once it left BUILD (fails the test if it never does)."""
    found: dict = {}

    def done() -> bool:
        found.update(server(compute, server_id))
        return found["status"] != "BUILD"

    wait_for(done, timeout, f"server {server_id} to leave BUILD", interval=0.05)
    return found


def boot_and_wait(compute: Any, image_id: str, name: str = "vm", timeout: float = 60) -> dict:
    """Boot `image_id` and return the server once it has left BUILD."""
    return wait_built(compute, boot(compute, image_id, name)["id"], timeout)


def base_dir(compute: Any) -> Path:
    return Path(compute.instances_path) / "_base"


def base_name(image_id: str) -> str:
    return hashlib.sha1(image_id.encode()).hexdigest()


def sha512_file(path: Path | str) -> str:
    return digests(path)["os_hash_value"]


def transfers_logged(compute: Any) -> int:
    return compute.log_text().count("Successfully transferred using")


def same_content(a: Path | str, b: Path | str) -> bool:
    """Byte-for-byte equality (cheaper than hashing both when one digest is known)."""
    if os.path.getsize(a) != os.path.getsize(b):
        return False
    with open(a, "rb") as fa, open(b, "rb") as fb:
        while True:
            ca, cb = fa.read(4 * MiB), fb.read(4 * MiB)
            if ca != cb:
                return False
            if not ca:
                return True
