"""Server subprocesses for the benchmarks: start on a free loopback port, wait, stop, measure RSS.

Every server the benchmark talks to (chute-api, chute-compute, Glance under uWSGI, nginx) runs
as a child process in the foreground so it dies with the benchmark and its process tree can be
sampled from /proc for the memory scenario.
"""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServiceError(RuntimeError):
    """A server did not start; the message ends with the tail of its log."""


@dataclass
class Service:
    """One server subprocess whose output goes to `log_path`."""

    name: str
    argv: list[str]
    log_path: Path
    port: int
    env: dict[str, str] | None = None
    app_log: Path | None = None  # the service's own log_file, when not its stdout
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, ready_path: str = "/", timeout: float = 60.0) -> "Service":
        env = dict(os.environ, **(self.env or {}))
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, env=env)
        self._wait_ready(ready_path, timeout)
        return self

    def _wait_ready(self, path: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise ServiceError(f"{self.name} exited with {self.proc.returncode}: "
                                   f"{self.log_tail()}")
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                conn.request("GET", path)
                status = conn.getresponse().status
                conn.close()
                if status < 500:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        self.stop()
        raise ServiceError(f"{self.name} did not answer on port {self.port} within "
                           f"{timeout:.0f} s: {self.log_tail()}")

    def log_tail(self, lines: int = 6) -> str:
        tails = []
        for path in dict.fromkeys(p for p in (self.log_path, self.app_log) if p):
            try:
                text = path.read_text(errors="replace")
            except OSError:
                continue
            tails += text.strip().splitlines()[-lines:]
        return " | ".join(tails) or "(empty log)"

    @property
    def _log(self) -> Path:
        return self.app_log or self.log_path

    def log_size(self) -> int:
        try:
            return self._log.stat().st_size
        except OSError:
            return 0

    def log_since(self, offset: int) -> str:
        with open(self._log, "rb") as handle:
            handle.seek(offset)
            return handle.read().decode(errors="replace")

    def pids(self) -> list[int]:
        if self.proc is None or self.proc.poll() is not None:
            return []
        return tree_pids(self.proc.pid)

    def stop(self, timeout: float = 15.0) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            for pid in tree_pids(proc.pid):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            proc.wait(5)


def _children(pid: int) -> list[int]:
    kids: list[int] = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as handle:
                kids.extend(int(p) for p in handle.read().split())
    except OSError:
        pass
    return kids


def tree_pids(pid: int) -> list[int]:
    """`pid` and all its descendants (gunicorn/uWSGI master + workers)."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(_children(current))
    return found


def rss_bytes(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status") as handle:
                for line in handle:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1]) * 1024
                        break
        except OSError:
            continue
    return total


def pss_bytes(pids: list[int]) -> int:
    """Proportional set size: pages shared by N processes count 1/N in each. gunicorn workers
    fork from a master that imported the app and share its pages; uWSGI's lazy-apps workers
    load Glance after the fork and share little - summed RSS counts the former many times."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/smaps_rollup") as handle:
                for line in handle:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1]) * 1024
                        break
        except OSError:
            continue
    return total


_TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time the processes (all their threads) have used so far."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
    return total / _TICK


def machine_cpu_seconds() -> float:
    """CPU time every core of the machine has spent busy so far (user, nice, system, irq,
    softirq and steal of /proc/stat; idle and iowait excluded): the whole machine's work,
    PostgreSQL backends and kernel threads included, which no process tree holds."""
    with open("/proc/stat") as handle:
        fields = handle.readline().split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(f) for f in fields[:8])
    return (user + nice + system + irq + softirq + steal) / _TICK


class RssSampler:
    """Peak summed RSS of a service's process tree, sampled every `interval` seconds.

    Summing master + workers counts pages they share after fork more than once; the peer is
    measured the same way, so the ratio stays fair. Also records the CPU seconds the service
    used meanwhile (`cpu`): on a shared machine, time varies with the load, CPU work much less.
    """

    def __init__(self, service: Service, interval: float = 0.05) -> None:
        self.service = service
        self.interval = interval
        self.peak = 0
        self.peak_pss = 0
        self.cpu = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="rss", daemon=True)

    def _loop(self) -> None:
        while True:
            self._sample()
            if self._stop.wait(self.interval):
                return

    def _sample(self) -> None:
        pids = self.service.pids()
        self.peak = max(self.peak, rss_bytes(pids))
        self.peak_pss = max(self.peak_pss, pss_bytes(pids))

    def __enter__(self) -> "RssSampler":
        self._pids = self.service.pids()
        self._cpu0 = cpu_seconds(self._pids)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()
        self.cpu = cpu_seconds(self._pids) - self._cpu0
