"""What a running service's processes are, read from /proc (a gunicorn master's workers)."""

from __future__ import annotations

import os

FRONT_END = "haproxy"  # the front end a service starts beside its workers (chute.front_end)


def children(pid: int) -> list[int]:
    """The pids of `pid`'s child processes, whichever of its threads forked them, but for the
    service's front end: for a service's main process, its gunicorn workers."""
    kids: list[int] = []
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/children") as handle:
            kids += [int(p) for p in handle.read().split()]
    return [kid for kid in kids if _name(kid) != FRONT_END]


def _name(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm") as handle:
            return handle.read().strip()
    except FileNotFoundError:
        return ""
