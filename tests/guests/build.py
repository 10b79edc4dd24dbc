"""Test guests, built offline and cached between runs under `.cache/guests/` in the repository
(or $CHUTE_GUEST_CACHE).

    python -m tests.guests.build marker DEST      # the marker boot sector on a 1 MiB raw disk

The marker guest (chute/compute/virt/bootsector.py) prints `chute-marker boot N` on the serial
console and counts its boots on its own disk: TCG boots it in well under a second.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from chute.compute.virt import bootsector

REPO = Path(__file__).resolve().parent.parent.parent


def cache_dir() -> Path:
    path = Path(os.environ.get("CHUTE_GUEST_CACHE") or REPO / ".cache" / "guests")
    path.mkdir(parents=True, exist_ok=True)
    return path


def marker(dest: Path, poweroff: bool = False) -> Path:
    """The marker disk (no cache needed: 512 bytes assembled in microseconds)."""
    return bootsector.write_disk(dest, poweroff=poweroff)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.guests.build")
    parser.add_argument("guest", choices=("marker", "marker-poweroff"))
    parser.add_argument("dest", type=Path)
    args = parser.parse_args(argv)
    marker(args.dest, poweroff=args.guest == "marker-poweroff")
    print(args.dest)
    return 0


if __name__ == "__main__":
    sys.exit(main())
