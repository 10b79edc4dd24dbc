"""Fault injection: raw sockets that stop half-way, a filesystem that fills up, seeded
randomness.

Everything random here is seeded: a failing trial can be replayed from the seed it prints.
"""

from __future__ import annotations

import contextlib
import os
import random
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.helpers.images import JSON, store_files

MiB = 1 << 20
SEED = int(os.environ.get("CHUTE_RELIABILITY_SEED", "20261125"))


def rng(name: str) -> random.Random:
    """One independent, reproducible stream per test (the suite seed + the test's name)."""
    return random.Random(f"{SEED}:{name}")


def open_chunked_upload(api: Any, image_id: str) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", api.port), timeout=30)
    head = (f"PUT /v2/images/{image_id}/file HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            "Content-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\n\r\n")
    sock.sendall(head.encode())
    return sock


def send_chunks(sock: socket.socket, path: Path | str, nbytes: int, chunk: int = MiB) -> None:
    """The first `nbytes` of `path` as 1 MiB chunks; the last one announced whole but cut
    short, so the body ends in the middle of a chunk."""
    with open(path, "rb") as data:
        while nbytes > 0:
            block = data.read(chunk)
            sock.sendall(f"{len(block):x}\r\n".encode() + block[:nbytes])
            if nbytes >= len(block):
                sock.sendall(b"\r\n")
            nbytes -= len(block)


def send_from_file(sock: socket.socket, path: Path | str, nbytes: int) -> int:
    """Send the first `nbytes` of `path` (the kernel copies them: cheap even for 256 MiB)."""
    with open(path, "rb") as data:
        return sock.sendfile(data, 0, nbytes) if nbytes else 0


def open_download(api: Any, image_id: str) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", api.port), timeout=30)
    sock.sendall(f"GET /v2/images/{image_id}/file HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
    return sock


def store_leftovers(api: Any, active_ids: set[str]) -> list[str]:
    """Entries of the datadir that are not the file of an active image: temporary files,
    or orphans (a whole-looking file that no image owns)."""
    return [name for name in store_files(api) if name not in active_ids]


def timed_get(url: str, timeout: float = 10) -> tuple[int, float]:
    started = time.monotonic()
    resp = requests.get(url, headers=JSON, timeout=timeout)
    return resp.status_code, time.monotonic() - started


@contextlib.contextmanager
def small_tmpfs(path: Path, size: str) -> Iterator[Path]:
    """A tmpfs of `size` at `path` (a real filesystem that fills up); skips if mount fails."""
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                          check=False, capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a {size} tmpfs at {path} to fill up "
                    f"(needs root/CAP_SYS_ADMIN): {done.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def free_bytes(path: Path | str) -> int:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def same_content(a: Path | str, b: Path | str) -> bool:
    """Byte-for-byte equality (cheaper than hashing both when one digest is known)."""
    if os.path.getsize(a) != os.path.getsize(b):
        return False
    with open(a, "rb") as fa, open(b, "rb") as fb:
        while True:
            ca, cb = fa.read(4 * MiB), fb.read(4 * MiB)
            if ca != cb:
                return False
            if not ca:
                return True
