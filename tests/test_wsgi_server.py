"""A chute-api worker gives back what a large upload used, seen from outside in
/proc/PID/status of a real worker (chute.images.upload's ring, chute.wsgi_server's hook)."""

from __future__ import annotations

import os
import time

import requests

from tests.images.test_image_main import children

MiB = 1 << 20


def rss_mib(pid: int) -> float:
    time.sleep(0.5)  # the hook runs after the response has been sent
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS for {pid}")


def upload(url: str, data: bytes) -> None:
    created = requests.post(f"{url}/v2/images", json={
        "name": "x", "disk_format": "raw", "container_format": "bare"})
    assert created.status_code == 201
    put = requests.put(f"{url}/v2/images/{created.json()['id']}/file", data=data,
                       headers={"Content-Type": "application/octet-stream"})
    assert put.status_code == 204


def test_uploads_leave_the_worker_no_larger(start_api):
    # Measured before the upload ring moved out of malloc (chute.images.upload._Slot): the
    # worker grew 4 MiB at a time as uploads landed on new request threads, +16 MiB after 6
    # uploads; now +0.1 MiB.
    server = start_api(DEFAULT={"workers": 1})
    (worker,) = children(server.proc.pid)
    data = os.urandom(16 * MiB)
    for _ in range(2):  # the first uploads map the hashing libraries and fill the DB caches
        upload(server.url, data)
    settled = rss_mib(worker)
    for _ in range(6):
        upload(server.url, data)
    assert rss_mib(worker) - settled < 6
