"""Progress display on stderr, so stdout stays clean for tables and JSON."""

from __future__ import annotations

import sys
import time
from contextlib import AbstractContextManager
from typing import Any, Protocol


class ByteBar(Protocol):
    def update(self, n: int) -> Any: ...


class _NoBar:
    """What byte_bar gives when no bar is asked for: tqdm is then not even imported."""

    def update(self, n: int) -> None:
        pass

    def __enter__(self) -> _NoBar:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


def byte_bar(total: int | None, desc: str, enabled: bool) -> AbstractContextManager[ByteBar]:
    """A bytes progress bar with rate and ETA; a silent no-op object when not enabled."""
    if not enabled:
        return _NoBar()
    from tqdm import tqdm  # imported when used: every `chute` run pays for its imports

    bar: AbstractContextManager[ByteBar] = tqdm(
        total=total, desc=desc, unit="B", unit_scale=True, unit_divisor=1024, file=sys.stderr,
        dynamic_ncols=True, mininterval=0.2, leave=True)
    return bar


class StatusLine:
    """One updating line for polls: redrawn in place on a terminal, a new line per change
    otherwise (so logs and tests see every state once)."""

    def __init__(self) -> None:
        self.tty = sys.stderr.isatty()
        self.last = ""
        self.start = time.monotonic()

    def show(self, text: str) -> None:
        elapsed = time.monotonic() - self.start
        if self.tty:
            sys.stderr.write(f"\r{text} [{elapsed:.0f}s]\033[K")
            sys.stderr.flush()
        elif text != self.last:
            sys.stderr.write(f"{text} [{elapsed:.0f}s]\n")
            sys.stderr.flush()
        self.last = text

    def done(self, text: str) -> None:
        self.show(text)
        if self.tty:
            sys.stderr.write("\n")
            sys.stderr.flush()
