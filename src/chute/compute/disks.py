"""Instance disks: `<instances_path>/<uuid>/disk` made from a verified cache base.

Two layouts, as Nova's Qcow2 and Flat backends (docs/architecture.md#nova-disks):
- qcow2: a thin overlay backed by the base, with the backing format written into the overlay
  (`-F`) so qemu never probes the base's format;
- raw: a full copy through chute.transfer.copy (clone when the filesystem can), grown to the
  flavor's root size.

The base is re-inspected (no backing file, no data file, content matches its format) before any
qemu-img call, every time: rules may have tightened since the file was cached, and a qcow2
uploaded as "raw" would otherwise be probed by qemu-img (CVE-2024-32498, Nova b1b88bf001).
"""

from __future__ import annotations

import errno
import logging
import os
import subprocess
from pathlib import Path

from chute import formats
from chute.compute.flavors import Flavor
from chute.errors import ComputeError, UnsupportedFormat
from chute.transfer.copy import copy_file

LOG = logging.getLogger(__name__)

QEMU_IMG = "qemu-img"
QEMU_IMG_TIMEOUT = 600  # seconds; a convert of a multi-GiB image on a slow disk still fits


class DiskError(ComputeError):
    """The instance disk could not be made; the message is the server's fault."""


def disk_path(instances_path: str, instance_id: str) -> Path:
    return Path(instances_path) / instance_id / "disk"


def check_base(base: str, disk_format: str, flavor: Flavor) -> tuple[str, int]:
    """Safety-check the base and return (qemu format, virtual size in bytes)."""
    qemu_format = formats.QEMU_FORMATS.get(disk_format)
    if qemu_format is None:
        raise DiskError(f"disk_format {disk_format!r} cannot back an instance disk")
    try:
        info = formats.inspect_file(base, disk_format)
    except UnsupportedFormat as exc:
        raise DiskError(f"Base image failed safety check: {exc.message}") from None
    virtual_size = info.virtual_size if info.virtual_size is not None else os.path.getsize(base)
    if virtual_size > flavor.root_bytes:
        raise DiskError(
            "Flavor's disk is too small for requested image. Flavor disk is "
            f"{flavor.root_bytes} bytes, image is {virtual_size} bytes.")
    return qemu_format, virtual_size


def create(instances_path: str, instance_id: str, base: str, disk_format: str,
           flavor: Flavor, images_type: str, content: str | None = None) -> Path:
    """Make the instance disk; it appears under its final name only when complete.

    `content`: where the base's bytes are while `base` does not exist yet (the image cache's
    `.part`, being verified, renamed to `base` once it passed): checked and copied from there,
    and a qcow2 overlay names `base` without qemu-img opening it (`-u`, the size is given;
    the overlay is byte for byte the one made with the base present)."""
    source = content or base
    qemu_format, _ = check_base(source, disk_format, flavor)
    final = disk_path(instances_path, instance_id)
    final.parent.mkdir(mode=0o750, parents=True, exist_ok=True)
    tmp = final.with_name("disk.tmp")
    try:
        if images_type == "raw":
            _make_raw(source, qemu_format, tmp, flavor.root_bytes)
        else:
            unsafe = ["-u"] if source != base else []
            _qemu_img("create", "-f", "qcow2", *unsafe, "-b", os.path.abspath(base),
                      "-F", qemu_format, str(tmp), f"{flavor.disk}G")
        _fsync(tmp)
        os.replace(tmp, final)
    except OSError as exc:
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        # A full instances_path is an operator's problem to fix, not a crash: say so.
        raise DiskError(f"cannot write the instance disk {final}: {exc.strerror}") from None
    finally:
        tmp.unlink(missing_ok=True)
    LOG.info("Created %s disk %s from %s (%s, root %d GiB)", images_type, final, base,
             qemu_format, flavor.disk)
    return final


def _make_raw(base: str, qemu_format: str, target: Path, size: int) -> None:
    if qemu_format == "raw":
        result = copy_file(base, str(target))
        LOG.info("Copied %s to %s (%s, %d bytes in %.3f s)", base, target, result.primitive,
                 result.nbytes, result.seconds)
    else:
        _qemu_img("convert", "-f", qemu_format, "-O", "raw", base, str(target))
    if os.path.getsize(target) < size:
        os.truncate(target, size)


def _qemu_img(*args: str) -> None:
    cmd = [QEMU_IMG, *args]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=QEMU_IMG_TIMEOUT,
                              check=False)
    except subprocess.TimeoutExpired:
        raise DiskError(f"qemu-img {args[0]} timed out after {QEMU_IMG_TIMEOUT} s") from None
    except OSError as exc:
        raise DiskError(f"cannot run qemu-img: {exc.strerror}") from None
    if proc.returncode != 0:
        stderr = " ".join(proc.stderr.split()) or f"exit status {proc.returncode}"
        raise DiskError(f"qemu-img {args[0]} failed: {stderr}")


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
