"""Load (issue 5 item 10): 50 concurrent clients for 30 s mixing create, upload (small), show,
list, download and delete against a real chute-api: zero 5xx, zero lost or corrupted images,
latency percentiles printed per operation.

Each client is a thread with its own requests.Session and its own seeded RNG (sizes, contents,
which images it deletes), so a run is reproducible up to scheduling. Every image a client keeps
is verified again at the end (status, size, MD5 and SHA-512 of the downloaded bytes); every
deleted one must be gone. CHUTE_LOAD_SECONDS / CHUTE_LOAD_CLIENTS change the duration and
concurrency for experiments; `make test` runs the issue's 50 clients x 30 s.
"""

from __future__ import annotations

import hashlib
import os
import random
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field

import requests

SECONDS = float(os.environ.get("CHUTE_LOAD_SECONDS", "30"))
CLIENTS = int(os.environ.get("CHUTE_LOAD_CLIENTS", "50"))
OPS = ("create", "upload", "show", "list", "download", "delete")
JSON = {"Accept": "application/json"}


@dataclass
class Kept:
    size: int
    md5: str
    sha512: str


@dataclass
class Results:
    lock: threading.Lock = field(default_factory=threading.Lock)
    latency: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    statuses: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    errors: list[str] = field(default_factory=list)
    kept: dict[str, Kept] = field(default_factory=dict)
    deleted: list[str] = field(default_factory=list)

    def record(self, op: str, seconds: float, status: int) -> None:
        with self.lock:
            self.latency[op].append(seconds)
            self.statuses[status] += 1

    def error(self, text: str) -> None:
        with self.lock:
            self.errors.append(text)


def timed(results: Results, op: str, want: int, call, *args, **kwargs) -> requests.Response | None:
    started = time.monotonic()
    try:
        resp = call(*args, timeout=60, **kwargs)
    except requests.RequestException as exc:
        results.error(f"{op}: {type(exc).__name__}: {exc}")
        return None
    results.record(op, time.monotonic() - started, resp.status_code)
    if resp.status_code != want:
        results.error(f"{op}: {resp.status_code} (wanted {want}): {resp.text[:200]}")
        return None
    return resp


def client(url: str, n: int, deadline: float, results: Results) -> None:
    rng = random.Random(1000 + n)
    session = requests.Session()
    session.headers.update(JSON)
    while time.monotonic() < deadline:
        resp = timed(results, "create", 201, session.post, url + "/v2/images", json={
            "name": f"load-{n}", "disk_format": "raw", "container_format": "bare"})
        if resp is None:
            continue
        image_id = resp.json()["id"]
        data = rng.randbytes(rng.randint(1, 64) << 10)
        want = Kept(len(data), hashlib.md5(data).hexdigest(), hashlib.sha512(data).hexdigest())
        if timed(results, "upload", 204, session.put, f"{url}/v2/images/{image_id}/file",
                 data=data, headers={"Content-Type": "application/octet-stream"}) is None:
            continue
        resp = timed(results, "show", 200, session.get, f"{url}/v2/images/{image_id}")
        if resp is not None:
            doc = resp.json()
            if (doc["status"], doc["size"], doc["checksum"]) != ("active", want.size, want.md5):
                results.error(f"show {image_id}: {doc['status']} {doc['size']} {doc['checksum']}")
        timed(results, "list", 200, session.get, url + "/v2/images",
              params={"limit": rng.choice([5, 20, 50])})
        resp = timed(results, "download", 200, session.get, f"{url}/v2/images/{image_id}/file")
        if resp is not None and hashlib.sha512(resp.content).hexdigest() != want.sha512:
            results.error(f"download {image_id}: corrupted ({len(resp.content)} bytes)")
        if rng.random() < 0.5:
            if timed(results, "delete", 204, session.delete,
                     f"{url}/v2/images/{image_id}") is not None:
                with results.lock:
                    results.deleted.append(image_id)
        else:
            with results.lock:
                results.kept[image_id] = want


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def verify(url: str, results: Results) -> tuple[int, int]:
    """-> (lost, corrupted) among the kept images; deleted ones must answer 404."""
    lost = corrupted = 0
    session = requests.Session()
    session.headers.update(JSON)
    for image_id, want in results.kept.items():
        resp = session.get(f"{url}/v2/images/{image_id}", timeout=60)
        if resp.status_code != 200 or resp.json()["status"] != "active":
            lost += 1
            continue
        data = session.get(f"{url}/v2/images/{image_id}/file", timeout=60).content
        if (len(data), hashlib.sha512(data).hexdigest()) != (want.size, want.sha512):
            corrupted += 1
    for image_id in results.deleted:
        status = session.get(f"{url}/v2/images/{image_id}", timeout=60).status_code
        if status != 404:
            results.error(f"deleted image {image_id} answers {status}")
    return lost, corrupted


def test_fifty_clients_for_thirty_seconds(start_api, capsys):
    api = start_api()
    results = Results()
    deadline = time.monotonic() + SECONDS
    threads = [threading.Thread(target=client, args=(api.url, n, deadline, results),
                                name=f"load-{n}") for n in range(CLIENTS)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=SECONDS + 120)
    elapsed = time.monotonic() - started
    assert not any(thread.is_alive() for thread in threads)
    lost, corrupted = verify(api.url, results)

    total = sum(len(v) for v in results.latency.values())
    server_errors = sum(count for status, count in results.statuses.items() if status >= 500)
    lines = [f"\n[load] {CLIENTS} clients x {SECONDS:.0f} s: {total} requests in {elapsed:.1f} s "
             f"({total / elapsed:.0f}/s), {server_errors} 5xx, {len(results.errors)} errors, "
             f"{len(results.kept)} images kept ({lost} lost, {corrupted} corrupted), "
             f"{len(results.deleted)} deleted",
             f"{'operation':<10}{'count':>8}{'p50 ms':>10}{'p90 ms':>10}{'p99 ms':>10}"]
    for op in OPS:
        values = results.latency.get(op, [])
        if values:
            lines.append(f"{op:<10}{len(values):>8}{percentile(values, .5):>10.1f}"
                         f"{percentile(values, .9):>10.1f}{percentile(values, .99):>10.1f}")
    with capsys.disabled():
        print("\n".join(lines))
    assert server_errors == 0, dict(results.statuses)
    assert results.errors == [], results.errors[:10]
    assert (lost, corrupted) == (0, 0)
    assert all(results.latency[op] for op in OPS), {op: len(results.latency[op]) for op in OPS}
    assert "Traceback" not in api.log_text()
