"""Progress display on stderr, so stdout stays clean for tables and JSON."""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tqdm import tqdm


def byte_bar(total: int | None, desc: str, enabled: bool) -> tqdm:
    """A bytes progress bar with rate and ETA; a silent no-op object when not enabled."""
    from tqdm import tqdm  # imported when used: every `chute` run pays for its imports

    return tqdm(total=total, desc=desc, unit="B", unit_scale=True, unit_divisor=1024,
                file=sys.stderr, disable=not enabled, dynamic_ncols=True, mininterval=0.2,
                leave=True)


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
