"""Proof that nobody opened a file: inotify IN_OPEN watches plus FIFO traps.

A hostile location or image names a file the services must never open. Asserting on log lines
only shows what the code *says* it did; the kernel tells what any process (chute-compute, a
qemu-img it ran, a gunicorn worker) really did:
- `inotify` IN_OPEN on each trap (a watched directory also reports opens of its entries),
  read through ctypes (no dependency). stat/lstat/realpath do not count as opens, so the
  containment checks themselves leave no event.
- A FIFO trap catches an opener that is still blocked inside open(2) (no IN_OPEN is sent
  until open returns): a non-blocking open for writing succeeds only while a reader exists.
"""

from __future__ import annotations

import ctypes
import errno
import os
import struct
from pathlib import Path

IN_OPEN = 0x00000020
IN_NONBLOCK = os.O_NONBLOCK
IN_CLOEXEC = os.O_CLOEXEC
_EVENT = struct.Struct("iIII")

_libc = ctypes.CDLL(None, use_errno=True)


class OpenTrap:
    """Watch paths for opens by any process; `opened()` lists what was opened since."""

    def __init__(self) -> None:
        self.fd = _libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
        if self.fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1 failed")
        self.watches: dict[int, Path] = {}
        self.fifos: list[Path] = []

    def watch(self, path: Path) -> Path:
        wd = _libc.inotify_add_watch(self.fd, os.fsencode(path), IN_OPEN)
        if wd < 0:
            raise OSError(ctypes.get_errno(), f"inotify_add_watch {path} failed")
        self.watches[wd] = Path(path)
        return Path(path)

    def fifo(self, path: Path) -> Path:
        """Make a FIFO at `path` and watch it."""
        os.mkfifo(path)
        self.fifos.append(Path(path))
        return self.watch(path)

    def opened(self) -> list[str]:
        found = []
        while True:
            try:
                data = os.read(self.fd, 65536)
            except BlockingIOError:
                break
            offset = 0
            while offset < len(data):
                wd, _mask, _cookie, length = _EVENT.unpack_from(data, offset)
                name = data[offset + _EVENT.size: offset + _EVENT.size + length].rstrip(b"\0")
                base = self.watches.get(wd, Path("?"))
                found.append(str(base / os.fsdecode(name)) if name else str(base))
                offset += _EVENT.size + length
        for fifo in self.fifos:
            if _has_reader(fifo):
                found.append(f"{fifo} (reader blocked in open)")
        return found

    def close(self) -> None:
        os.close(self.fd)


def _has_reader(fifo: Path) -> bool:
    try:
        fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
    except OSError as exc:
        if exc.errno == errno.ENXIO:
            return False
        raise
    os.close(fd)  # the blocked reader now sees EOF and its open returns
    return True
