"""Small real disk images: made by qemu-img and qemu-io, or written byte by byte."""

from __future__ import annotations

import hashlib
import json
import random
import struct
import subprocess
import uuid
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


LUKS_SECTOR = 512
_LUKS_STRIPES = 4000
_LUKS_KEY_BYTES = 64  # aes-256-xts: two 256-bit keys
_LUKS_SLOT_ENABLED, _LUKS_SLOT_DISABLED = 0x00AC71F3, 0x0000DEAD


def make_luks(path: Path, virtual: int) -> Path:
    """A LUKS1 header, as `qemu-img create -f luks` lays it out (aes-xts-plain64, sha256,
    key slot 0 active), over `virtual` bytes of payload (a hole).

    Written here rather than by qemu-img: qemu-img sizes its PBKDF2 by timing a first round
    of about 7 ms of the thread's user CPU time read with getrusage(), which this kernel
    (tick-based CPU accounting) reports as 0 often enough on a busy machine; qemu 7.2 then
    fails with "Unable to get accurate CPU usage" (qemu-devel fix, January 2025). The tests inspect
    the header only, never decrypt, so no key material is needed; qemu-img info reads it as luks.
    """
    material = _LUKS_KEY_BYTES * _LUKS_STRIPES
    slot_sectors = -(-material // 4096) * 4096 // LUKS_SECTOR  # each slot 4 KiB aligned
    first = 4096 // LUKS_SECTOR  # the header's own 592 bytes, rounded to 4 KiB
    payload = first + 8 * slot_sectors
    gen = random.Random(str(path))
    header = struct.pack(">6sH32s32s32sII20s32sI40s", b"LUKS\xba\xbe", 1, b"aes", b"xts-plain64",
                         b"sha256", payload, _LUKS_KEY_BYTES, gen.randbytes(20),
                         gen.randbytes(32), 1000, str(uuid.UUID(int=gen.getrandbits(128))).encode())
    for slot in range(8):
        active = slot == 0
        header += struct.pack(">II32sII", _LUKS_SLOT_ENABLED if active else _LUKS_SLOT_DISABLED,
                              1000 if active else 0, gen.randbytes(32) if active else bytes(32),
                              first + slot * slot_sectors, _LUKS_STRIPES)
    with open(path, "wb") as out:
        out.write(header)
        out.seek(first * LUKS_SECTOR)
        out.write(gen.randbytes(material))  # slot 0's key material (never used)
        out.truncate(payload * LUKS_SECTOR + virtual)
    return path
