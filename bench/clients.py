"""What the scenarios do to a server: timed commands, raw PUT/GET, image and server calls.

The raw reader is http.client with one reused 1 MiB buffer and `readinto`: on this machine it
reads at 2.5-3.8 GB/s, so it measures the server, while a `curl -o FILE` reader tops out near
1 GB/s. The same reader is pointed at chute, Glance and nginx.
"""

from __future__ import annotations

import http.client
import json
import os
import resource
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

MiB = 1 << 20
BOOT_TIMEOUT = 600.0


# Sent as X-Auth-Token by every call (services without auth ignore it); a scenario whose
# services check tokens sets it to one of theirs for its run.
TOKEN = "bench"


class BenchError(RuntimeError):
    """A measured operation failed or produced a wrong result."""


def script(name: str) -> str:
    """A console script of this virtualenv (chute, chute-api, chute-compute)."""
    path = Path(sys.executable).parent / name
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: run `make install` first")
    return str(path)


def settle() -> None:
    """Between two measurements: write back what the last one dirtied, so its writeback does
    not land in the next one's time."""
    os.sync()


def _conn(url: str, timeout: float = 300) -> tuple[http.client.HTTPConnection, str]:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    return conn, parts.path + (f"?{parts.query}" if parts.query else "")


def call(method: str, url: str, body: Any = None, expect: tuple[int, ...] = (200,),
         content_type: str = "application/json") -> Any:
    conn, path = _conn(url)
    try:
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": content_type, "Accept": "application/json",
                   "X-Auth-Token": TOKEN}
        conn.request(method, path, body=data, headers=headers)
        resp = conn.getresponse()
        raw = resp.read()
    finally:
        conn.close()
    if resp.status not in expect:
        raise BenchError(f"{method} {url} -> {resp.status}: {raw[:300]!r}")
    return json.loads(raw) if raw else None


def create_image(base: str, name: str, disk_format: str = "raw") -> str:
    doc = call("POST", f"{base}/v2/images", {"name": name, "disk_format": disk_format,
                                             "container_format": "bare"}, expect=(201,))
    return str(doc["id"])


def get_image(base: str, image_id: str) -> dict[str, Any]:
    return dict(call("GET", f"{base}/v2/images/{image_id}"))


def delete_image(base: str, image_id: str) -> None:
    call("DELETE", f"{base}/v2/images/{image_id}", expect=(204, 404))


def find_image(base: str, name: str) -> dict[str, Any]:
    images = call("GET", f"{base}/v2/images?name={name}")["images"]
    if len(images) != 1:
        raise BenchError(f"expected one image named {name} at {base}, found {len(images)}")
    return dict(images[0])


def check_active(base: str, image_id: str, md5: str, size: int) -> dict[str, Any]:
    """An upload counts only if the image is active with the right size and MD5."""
    image = get_image(base, image_id)
    got = (image.get("status"), image.get("size"), image.get("checksum"))
    if got != ("active", size, md5):
        raise BenchError(f"image {image_id} at {base} is {got}, wanted "
                         f"('active', {size}, {md5!r})")
    return image


def upload(base: str, path: str, md5: str, size: int, disk_format: str = "raw") -> str:
    """An active image holding `path`, uploaded by raw PUT and checked; -> its id."""
    image_id = create_image(base, unique("bench"), disk_format)
    curl_put(base, image_id, path)
    check_active(base, image_id, md5, size)
    return image_id


def stored_path(base: str, image_id: str) -> Path:
    """The file behind a file:// location (both chute and Glance show locations here)."""
    for location in get_image(base, image_id).get("locations") or []:
        url = location.get("url", "")
        if url.startswith("file://"):
            return Path(url[len("file://"):])
    raise BenchError(f"image {image_id} at {base} has no file:// location")


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def timed(argv: list[str], timeout: float = 1800) -> float:
    """Wall seconds of a command that must succeed; its last output line explains a failure."""
    return timed_cpu(argv, timeout)[0]


def children_cpu() -> float:
    """CPU seconds (user + system) of this process's finished children: the commands run."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed_cpu(argv: list[str], timeout: float = 1800) -> tuple[float, float]:
    """(wall, CPU) seconds of a command that must succeed. CPU is user + system of the
    command and its children: on the 2-core bench machine every CPU-second a client burns
    is taken from the server it talks to, so it is measured beside the wall time."""
    before = children_cpu()
    started = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    seconds = time.perf_counter() - started
    cpu = children_cpu() - before
    if done.returncode != 0:
        lines = (done.stderr.strip() or done.stdout.strip()).splitlines()
        raise BenchError(f"{argv[0].rsplit('/', 1)[-1]} {' '.join(argv[1:3])}... exited "
                         f"{done.returncode}: {lines[-1] if lines else '(no output)'}")
    return seconds, cpu


def curl_put(base: str, image_id: str, path: str) -> float:
    return curl_put_cpu(base, image_id, path)[0]


def curl_put_cpu(base: str, image_id: str, path: str) -> tuple[float, float]:
    """A raw PUT with Content-Length -> (wall, client CPU) seconds. `Expect:` is cleared
    because uWSGI's http-socket never answers `100-continue` and curl would then wait 1 s
    before sending."""
    return timed_cpu(["curl", "-sS", "-f", "-o", "/dev/null", "-T", path, "-H", "Expect:",
                  "-H", "Content-Type: application/octet-stream", "-H", f"X-Auth-Token: {TOKEN}",
                  f"{base}/v2/images/{image_id}/file"])


def http_read(url: str, expect_bytes: int) -> float:
    """GET `url` and read the body into one 1 MiB buffer; -> seconds. Byte count checked."""
    buf = bytearray(MiB)
    started = time.perf_counter()
    conn, path = _conn(url)
    try:
        conn.request("GET", path, headers={"X-Auth-Token": TOKEN})
        resp = conn.getresponse()
        if resp.status != 200:
            raise BenchError(f"GET {url} -> {resp.status}: {resp.read(300)!r}")
        total = 0
        while n := resp.readinto(buf):
            total += n
    finally:
        conn.close()
    seconds = time.perf_counter() - started
    if total != expect_bytes:
        raise BenchError(f"GET {url} returned {total} bytes, expected {expect_bytes}")
    return seconds


# -- compute ------------------------------------------------------------------------------

def boot(compute: str, image_id: str, name: str,
         poll: float = 0.01) -> tuple[float, dict[str, Any]]:
    """POST a server and poll until ACTIVE; -> (seconds, server document). ERROR raises."""
    started = time.perf_counter()
    doc = call("POST", f"{compute}/v2.1/servers",
               {"server": {"name": name, "imageRef": image_id, "flavorRef": "2"}},
               expect=(202,))
    server_id = doc["server"]["id"]
    return wait_active(compute, server_id, started, poll)


def wait_active(compute: str, server_id: str, started: float,
                poll: float = 0.01) -> tuple[float, dict[str, Any]]:
    while True:
        server = call("GET", f"{compute}/v2.1/servers/{server_id}")["server"]
        if server["status"] == "ACTIVE":
            return time.perf_counter() - started, server
        if server["status"] == "ERROR":
            fault = (server.get("fault") or {}).get("message", "no fault message")
            raise BenchError(f"server {server_id} went to ERROR: {fault}")
        if time.perf_counter() - started > BOOT_TIMEOUT:
            raise BenchError(f"server {server_id} not ACTIVE after {BOOT_TIMEOUT:.0f} s")
        time.sleep(poll)


def boot_many(compute: str, image_id: str, names: list[str],
              flavor: str = "2") -> tuple[float, list[str]]:
    """POST all servers at once, then poll them together (one GET /servers/detail per 10 ms,
    the load of one boot's poller); -> (seconds until all ACTIVE, server ids)."""
    def post(name: str) -> Any:
        return call("POST", f"{compute}/v2.1/servers",
                    {"server": {"name": name, "imageRef": image_id, "flavorRef": flavor}},
                    expect=(202,))

    started = time.perf_counter()
    with ThreadPoolExecutor(len(names)) as pool:
        docs = list(pool.map(post, names))
    ids = {doc["server"]["id"] for doc in docs}
    while True:
        servers = {s["id"]: s for s in call("GET", f"{compute}/v2.1/servers/detail")["servers"]
                   if s["id"] in ids}
        failed = [s for s in servers.values() if s["status"] == "ERROR"]
        if failed:
            fault = (failed[0].get("fault") or {}).get("message", "no fault message")
            raise BenchError(f"server {failed[0]['id']} went to ERROR: {fault}")
        if len(servers) == len(ids) and all(s["status"] == "ACTIVE" for s in servers.values()):
            return time.perf_counter() - started, sorted(ids)
        if time.perf_counter() - started > BOOT_TIMEOUT:
            raise BenchError(f"servers not all ACTIVE after {BOOT_TIMEOUT:.0f} s")
        time.sleep(0.01)


def delete_server(compute: str, server_id: str) -> None:
    call("DELETE", f"{compute}/v2.1/servers/{server_id}", expect=(204, 404))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        conn, path = _conn(f"{compute}/v2.1/servers/{server_id}")
        try:
            conn.request("GET", path, headers={"X-Auth-Token": TOKEN})
            status = conn.getresponse().status
        finally:
            conn.close()
        if status == 404:
            return
        time.sleep(0.02)
    raise BenchError(f"server {server_id} still present 60 s after DELETE")
