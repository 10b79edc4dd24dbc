"""Small real disk images: made by qemu-img and qemu-io, or written byte by byte."""

from __future__ import annotations

import hashlib
import json
import random
import subprocess
from pathlib import Path

MiB = 1 << 20


def run_qemu(tool: str, *args: str) -> str:
    """Run qemu-img or qemu-io; a failure says what the tool printed, not only its exit code."""
    done = subprocess.run([tool, *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise AssertionError(f"{tool} {' '.join(args)} exited {done.returncode}:\n"
                             f"{done.stderr.strip() or done.stdout.strip()}")
    return done.stdout


def qemu_img(*args: str) -> str:
    return run_qemu("qemu-img", *args)


def make_qcow2(path: Path, virtual: str = "64M", *options: str, data_mb: int = 4) -> Path:
    """A qcow2 made by qemu-img (extra `options` such as `-b BASE -F raw`) with `data_mb` MiB
    written by qemu-io (pattern 0x5a), so the image has real clusters, not just a header."""
    qemu_img("create", "-q", "-f", "qcow2", *options, str(path), virtual)
    if data_mb:
        run_qemu("qemu-io", "-f", "qcow2", "-c", f"write -P 0x5a 0 {data_mb}M", str(path))
    return path


def make_raw(path: Path, size_mb: int = 4) -> Path:
    """A raw image whose every MiB differs, so a shifted or truncated copy shows."""
    with open(path, "wb") as out:
        for n in range(size_mb):
            out.write(hashlib.sha512(str(n).encode()).digest() * (1 << 14))
    return path


def write_random_file(path: Path, size: int, seed: str) -> Path:
    """`size` bytes of seeded random data: every MiB differs, so a shifted copy shows."""
    gen = random.Random(seed)
    with open(path, "wb") as out:
        left = size
        while left:
            n = min(left, MiB)
            out.write(gen.randbytes(n))
            left -= n
    return path


def qemu_info(path: Path) -> dict:
    return json.loads(qemu_img("info", "--output=json", "-U", str(path)))

