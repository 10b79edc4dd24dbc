"""What a running service's processes are, read from /proc (a gunicorn master's workers)."""

from __future__ import annotations

import os


def children(pid: int) -> list[int]:
    """The pids of `pid`'s child processes, whichever of its threads forked them."""
    kids: list[int] = []
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/children") as handle:
            kids += [int(p) for p in handle.read().split()]
    return kids
