"""Many clients at once across worker processes: no lost updates, no leaks."""

from __future__ import annotations

import hashlib
import os
import time
from concurrent.futures import ThreadPoolExecutor

import requests

from tests.helpers.images import create, upload
from tests.helpers.procs import children


def roundtrip(api, index):
    data = os.urandom(200_000 + index)
    image = create(api, name=f"c{index}")
    assert upload(api, image["id"], data).status_code == 204
    got = requests.get(f"{api.url}/v2/images/{image['id']}/file")
    assert got.status_code == 200 and hashlib.sha512(got.content).hexdigest() == \
        hashlib.sha512(data).hexdigest()
    assert requests.put(f"{api.url}/v2/images/{image['id']}/tags/t{index}").status_code == 204
    assert requests.delete(f"{api.url}/v2/images/{image['id']}").status_code == 204
    return image["id"]


def worker_pids(api):
    return children(api.proc.pid)


def open_fds(pids):
    return sum(len(os.listdir(f"/proc/{pid}/fd")) for pid in pids)


def threads(pids):
    return sum(len(os.listdir(f"/proc/{pid}/task")) for pid in pids)


def test_parallel_roundtrips_and_no_fd_or_thread_leak(shared_api):
    with ThreadPoolExecutor(8) as pool:
        ids = list(pool.map(lambda i: roundtrip(shared_api, i), range(16)))
    assert len(set(ids)) == 16
    assert [n for n in os.listdir(shared_api.datadir) if n in ids] == []
    pids = worker_pids(shared_api)
    time.sleep(0.5)  # let the workers close the sockets of the finished requests
    before_fds, before_threads = open_fds(pids), threads(pids)
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda i: roundtrip(shared_api, i), range(16, 48)))
    assert worker_pids(shared_api) == pids  # no worker died
    time.sleep(0.5)
    # 32 more round-trips: a leak of one descriptor per transfer would add 32. The slack
    # covers SQLite pool connections (3 descriptors each) opened under a higher peak.
    assert open_fds(pids) <= before_fds + 12
    # gthread keeps at most `threads` (8) request threads per worker; the per-upload hashing
    # threads must all be gone again.
    assert threads(pids) <= max(before_threads, len(pids) * 12)


def test_racing_uploads_of_one_image_exactly_one_wins(shared_api):
    image = create(shared_api)
    payloads = [os.urandom(1 << 20) for _ in range(6)]
    with ThreadPoolExecutor(6) as pool:
        statuses = list(pool.map(lambda d: upload(shared_api, image["id"], d).status_code,
                                 payloads))
    assert sorted(statuses).count(204) == 1 and set(statuses) <= {204, 409}
    winner = payloads[statuses.index(204)]
    assert (shared_api.datadir / image["id"]).read_bytes() == winner
    doc = requests.get(f"{shared_api.url}/v2/images/{image['id']}").json()
    assert doc["checksum"] == hashlib.md5(winner).hexdigest()
