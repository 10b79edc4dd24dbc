"""Boots for the compute scenarios: boot one server, read how its image arrived, then put the
host back as it was (server deleted, cached base removed) so the next boot fetches again."""

from __future__ import annotations

import datetime
import hashlib
import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import clients
from bench.procs import Service, cpu_seconds

TRANSFER_LINE = "Successfully transferred using"


@dataclass
class Booted:
    seconds: float
    transfer: dict[str, Any]
    base_alloc: int  # bytes allocated to the cached base (st_blocks * 512)
    base_size: int
    cpu: float  # CPU seconds chute-compute used during the boot
    agent_seconds: float | None = None  # POST -> the agent's "ACTIVE" log line (ms resolution)


def base_path(instances: Path, image_id: str) -> Path:
    return instances / "_base" / hashlib.sha1(image_id.encode()).hexdigest()


def forget_base(instances: Path, image_id: str) -> None:
    base = base_path(instances, image_id)
    for path in (base, Path(f"{base}.info")):
        try:
            path.unlink()
        except FileNotFoundError:
            pass


def boot_once(compute: Service, instances: Path, image_id: str, method: str,
              poll: float = 0.01) -> Booted:
    """Boot, check the image came by `method` (file|http), clean up; -> timings.

    `poll`: seconds between two GETs of the server. `agent_seconds` is when the agent said the
    server was ACTIVE (its state saved: the next GET sees it), free of the poll's latency (on
    average half the poll) and usable with a slower poll, whose GETs then take less CPU from
    the boot they time."""
    mark = compute.log_size()
    cpu = cpu_seconds(compute.pids())
    posted = time.time()
    seconds, server = clients.boot(compute.url, image_id, clients.unique("bench-boot"), poll)
    cpu = cpu_seconds(compute.pids()) - cpu
    logged = None
    deadline = time.monotonic() + 5  # the line follows the saved state by a moment
    while logged is None and time.monotonic() < deadline:
        logged = active_logged_at(compute.log_since(mark), server["id"])
        if logged is None:
            time.sleep(0.01)
    try:
        transfer = server.get("chute:image_transfer") or {}
        if transfer.get("method") != method:
            raise clients.BenchError(f"image arrived by {transfer.get('method')!r}, not "
                                     f"{method!r} (see {compute.app_log})")
        st = os.stat(base_path(instances, image_id))
        return Booted(seconds, transfer, st.st_blocks * 512, st.st_size, cpu,
                      None if logged is None else max(logged - posted, 0.001))
    finally:
        clients.delete_server(compute.url, server["id"])
        forget_base(instances, image_id)


def active_logged_at(log_text: str, server_id: str) -> float | None:
    """The time (epoch seconds) of the agent's `Instance <id> ACTIVE` line in `log_text`,
    whose timestamps are local time to the millisecond (chute.log.FORMAT)."""
    needle = f"Instance {server_id} ACTIVE"
    for line in log_text.splitlines():
        if needle in line:
            return datetime.datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S.%f").timestamp()
    return None


def durable_cp(src: Path, dst: Path, reflink: str) -> float:
    """`cp --reflink=<reflink>` then `sync` of the copy: durable, unverified; -> seconds."""
    started = time.perf_counter()
    clients.timed(["cp", f"--reflink={reflink}", str(src), str(dst)])
    clients.timed(["sync", str(dst)])
    seconds = time.perf_counter() - started
    dst.unlink()
    return seconds


def plain_read(path: Path) -> float:
    """Read a file into one 1 MiB buffer, no hashing: the floor of any verified copy."""
    buf = bytearray(1 << 20)
    started = time.perf_counter()
    with open(path, "rb", buffering=0) as handle:
        while handle.readinto(buf):
            pass
    return time.perf_counter() - started


def run_quiet(argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True)
