"""A race made deterministic: change a path right after the code under test checked it.

Code that checks a file and then opens it (`lstat` then `open`, the time-of-check to
time-of-use window) must notice a swap in between. Racing a thread against it proves nothing
when the swap lands elsewhere; instead `swap_after_check` wraps `os.stat` so that the first
`stat(..., follow_symlinks=False)` of the target (by path, or by name relative to a directory
descriptor) returns the true answer and *then* swaps the path, before the caller's next
syscall. `os.path.realpath` uses `os.lstat`, which is left alone, so the containment checks
run on the original tree.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest


class Swap:
    def __init__(self) -> None:
        self.fired = 0


def swap_after_check(monkeypatch: pytest.MonkeyPatch, target: Path,
                     swap: Callable[[], None]) -> Swap:
    real_stat = os.stat
    done = Swap()

    def stat(path: Any, *args: Any, dir_fd: int | None = None, follow_symlinks: bool = True
             ) -> os.stat_result:
        result = real_stat(path, *args, dir_fd=dir_fd, follow_symlinks=follow_symlinks)
        named = os.fsdecode(path) if isinstance(path, (str, bytes, os.PathLike)) else None
        hit = named == str(target) or (dir_fd is not None and named == target.name)
        if hit and not follow_symlinks and not done.fired:
            done.fired += 1
            swap()
        return result

    monkeypatch.setattr(os, "stat", stat)
    return done
