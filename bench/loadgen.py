"""HTTP load for the API scenario: wrk (C, keep-alive, latency percentiles) when it is there,
else a thread pool of keep-alive http.client connections.

wrk is preferred because on 2 cores a Python load generator competes with the server for the
CPU and its GIL caps the request rate it can offer; the fallback is labelled in the results.
"""

from __future__ import annotations

import http.client
import re
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass
from urllib.parse import urlsplit


@dataclass
class Load:
    requests_per_s: float
    p99_ms: float
    errors: int
    tool: str


_UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def wrk_binary(install: bool) -> str | None:
    found = shutil.which("wrk")
    if found or not install:
        return found
    print("bench: installing wrk with apt-get", flush=True)
    env = {"DEBIAN_FRONTEND": "noninteractive", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
    for argv in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "wrk"]):
        if subprocess.run(argv, capture_output=True, env=env).returncode != 0:
            return None
    return shutil.which("wrk")


def run_wrk(binary: str, url: str, connections: int, seconds: float,
            token: str = "bench") -> Load:
    # --timeout 30s: a server that queues requests (Glance's 2 single-threaded uWSGI
    # processes behind 32 connections) answers slowly, not wrongly; its latency belongs in
    # the p99, not in wrk's default 2 s timeout count.
    argv = [binary, "-t2", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--latency",
            "--timeout", "30s", "-H", f"X-Auth-Token: {token}", "-H", "Accept: application/json",
            url]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60)
    out = done.stdout
    rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
    p99 = re.search(r"^\s+99%\s+([\d.]+)(us|ms|s|m)\s*$", out, re.M)
    if done.returncode != 0 or not rate or not p99:
        raise RuntimeError(f"wrk failed ({done.returncode}): {(done.stderr or out)[-300:]}")
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)",
                     out)
    errors = (int(bad.group(1)) if bad else 0) + (sum(map(int, sock.groups())) if sock else 0)
    return Load(float(rate.group(1)), float(p99.group(1)) * _UNIT_MS[p99.group(2)], errors, "wrk")


def run_threads(url: str, connections: int, seconds: float, token: str = "bench") -> Load:
    parts = urlsplit(url)
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    deadline = time.perf_counter() + seconds

    def worker() -> None:
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
        mine: list[float] = []
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            try:
                conn.request("GET", path, headers={"X-Auth-Token": token,
                                                   "Accept": "application/json"})
                resp = conn.getresponse()
                resp.read()
                ok = resp.status == 200
            except (OSError, http.client.HTTPException):
                conn.close()
                ok = False
            mine.append(time.perf_counter() - started)
            if not ok:
                with lock:
                    errors[0] += 1
        conn.close()
        with lock:
            latencies.extend(mine)

    started = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    latencies.sort()
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] if latencies else 0.0
    return Load(len(latencies) / elapsed, p99 * 1000, errors[0], "python threads")


def load(url: str, connections: int, seconds: float, wrk: str | None,
         token: str = "bench") -> Load:
    """`token` is sent as X-Auth-Token (services without auth ignore it)."""
    if wrk:
        return run_wrk(wrk, url, connections, seconds, token)
    return run_threads(url, connections, seconds, token)
