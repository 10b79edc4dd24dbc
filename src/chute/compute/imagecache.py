"""The host's image cache: `<instances_path>/_base/<sha1(image id)>`, one verified fetch per image.

Names follow Nova (sha1 of the image id, docs/architecture.md#nova-image-cache) so operators
recognise them.
Beside each base:
- `<sha1>.lock`: fcntl.flock'ed for the whole check-or-fetch, so N boots of one image on one
  host (threads or processes) cause exactly one transfer. flock locks belong to the open file
  description, so two threads of one process that each open the file exclude each other too.
  Lock files are never deleted: a waiter blocked on a deleted inode would not exclude a newer
  locker of a recreated file.
- `<sha1>.info`: JSON written (atomically) before the base is renamed into place: what was
  verified (size, digest) and what is stored (format, size on disk, which differ from the image
  when force_raw_images converted it). A base without a matching `.info` is not trusted.
- `<sha1>.part`, `<sha1>.converted`: work files, never used as a base; removed before a fetch
  (under the lock) and at start (when no one holds their lock).
A cached base is re-checked before every use (size on disk, format safety via
chute.formats.inspect_file) because rules may have tightened since it was cached (Nova re-checks
bases since CVE-2024-32498).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import re
import subprocess
import time
from dataclasses import dataclass, replace
from typing import Callable, Iterator

from chute.client.image import Expected, Image
from chute.compute.fetch import Fetcher
from chute.compute.instance import Transfer
from chute.compute.settings import CacheSettings
from chute.errors import ChuteError, TransferError, UnsupportedFormat
from chute.formats import QEMU_FORMATS, converts_to_raw, inspect_file
from chute.transfer.copy import CLONE

LOG = logging.getLogger("chute.compute.imagecache")

_BASE_NAME = re.compile(r"[0-9a-f]{40}")


@dataclass(frozen=True)
class Fetched:
    """How a base came to be usable: fetched by `file` or `http`, or found in the `cache`."""

    path: str
    transfer: Transfer  # method "file" | "http" | "cache"; seconds: making the base, all of it
    format: str  # how the base is stored: the disk_format, or raw if converted
    prepared: bool = False  # fetch's `prepare` already ran, while the clone was verified

    @property
    def method(self) -> str:
        return self.transfer.method

    @property
    def primitive(self) -> str | None:
        return self.transfer.primitive

    @property
    def nbytes(self) -> int:
        return self.transfer.nbytes

    @property
    def seconds(self) -> float:
        return self.transfer.seconds


@dataclass(frozen=True)
class Staged:
    """A base as `prepare` sees it: `path` is where it is or will be, `content` where its
    bytes are now (the `.part`, renamed to `path` once verified; `path` itself otherwise),
    `format` how it is stored."""

    path: str
    content: str
    format: str


Prepare = Callable[[Staged], None]


def base_name(image_id: str) -> str:
    return hashlib.sha1(image_id.encode("utf-8")).hexdigest()


class ImageCache:
    """Verified bases under `_base`; `fetch` blocks until this image's base exists."""

    def __init__(self, settings: CacheSettings, fetcher: Fetcher) -> None:
        self.settings, self.fetcher = settings, fetcher
        self.dir = settings.base_dir
        os.makedirs(self.dir, mode=0o750, exist_ok=True)
        self._remove_stale_work_files()

    def base_path(self, image_id: str) -> str:
        return os.path.join(self.dir, base_name(image_id))

    def fetch(self, image: Image, prepare: Prepare | None = None) -> Fetched:
        """`prepare`: what a boot makes from the base before it may use it (the instance's
        disk), called exactly once before this returns: while a clone is being verified when
        the base will be the clone as it is (chute.transfer.copy.copy_fd's while_verifying),
        else once the base is in place. It runs before the base is known good: whatever it
        made is the caller's to discard if this then raises."""
        fetched = self._fetch(image, prepare)
        if prepare is not None and not fetched.prepared:
            prepare(Staged(fetched.path, fetched.path, fetched.format))
        return fetched

    def _fetch(self, image: Image, prepare: Prepare | None) -> Fetched:
        image_id = image.id
        if image.status != "active":
            raise TransferError(f"image {image_id} is {image.status}, not active")
        want = self.fetcher.expected(image)
        base = self.base_path(image_id)
        with self._locked(base, image_id):
            started = time.monotonic()
            stored_format = self._usable(image, want, base)
            if stored_format:
                os.utime(base)  # the cleanup ages bases by mtime: this one is in use
                LOG.info("Image %s found in cache", image_id)
                return Fetched(base, Transfer("cache", None, os.stat(base).st_size,
                                              time.monotonic() - started, base), stored_format)
            return self._fetch_locked(image, want, base, started, prepare)

    # -- locking ------------------------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self, base: str, image_id: str) -> Iterator[None]:
        fd = os.open(base + ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o640)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                LOG.info("Waiting for image %s: another fetch is in progress", image_id)
                fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing the last descriptor releases the flock

    def _try_lock(self, base: str) -> int | None:
        fd = os.open(base + ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o640)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except BlockingIOError:
            os.close(fd)
            return None

    # -- the cached base ----------------------------------------------------------------

    def _usable(self, image: Image, want: Expected, base: str) -> str | None:
        """The stored format of a base that passes every check, else None."""
        if not os.path.exists(base):
            return None
        try:
            return self._check_base(image, want, base)
        except (ChuteError, OSError, ValueError, KeyError, TypeError) as exc:
            LOG.warning("Cached base %s of image %s is not usable (%s); fetching again",
                        base, image.id, getattr(exc, "message", None) or exc)
            _remove(base, base + ".info")
            return None

    def _check_base(self, image: Image, want: Expected, base: str) -> str:
        with open(base + ".info", encoding="utf-8") as handle:
            info = json.load(handle)
        if (info["image_id"], info["size"]) != (image.id, want.size):
            raise ValueError(f"recorded for {info['image_id']} of {info['size']} bytes")
        if (info["algorithm"], info["digest"]) != (want.algorithm, want.digest):
            raise ValueError("recorded digest differs from the image's")
        size = os.stat(base).st_size
        if size != info["stored_size"]:
            raise ValueError(f"{size} bytes on disk, {info['stored_size']} were stored")
        inspect_file(base, info["format"])
        return str(info["format"])

    # -- fetching -----------------------------------------------------------------------

    def _fetch_locked(self, image: Image, want: Expected, base: str, started: float,
                      prepare: Prepare | None) -> Fetched:
        part, converted = base + ".part", base + ".converted"
        _remove(part, converted)
        staged = Staged(base, part, image.disk_format or "raw")
        prepared = []  # the attempts that ran `prepare` (a failed clone may precede a good one)

        def while_verifying() -> None:
            # The format checks of the clone (our own file: the bytes being verified stay
            # its bytes) and the .info as it will be if they pass, both off the boot's path;
            # the .info is renamed into place only after the check, removed otherwise.
            inspect_file(part, staged.format)
            self._stage_info(image, want, base, part, staged.format, "file")
            if prepare is not None:
                prepare(staged)
            prepared.append(True)

        converts = self.settings.force_raw_images and converts_to_raw(staged.format)
        try:
            transfer = self.fetcher.fetch(image, part, want, None if converts else while_verifying)
            # Only a clone calls while_verifying, and only the last attempt succeeded: done
            # for the base's own bytes iff the transfer that won was a clone that called it.
            done = bool(prepared) and transfer.primitive == CLONE
            stored, fmt = self._make_base(image, part, converted, inspected=done)
            if not done:
                self._stage_info(image, want, base, stored, fmt, transfer.method)
            os.rename(base + ".info.tmp", base + ".info")
            os.rename(stored, base)
            _fsync_dir(self.dir)
        finally:
            _remove(part, converted, base + ".info.tmp")
        return Fetched(base, replace(transfer, seconds=time.monotonic() - started), fmt,
                       prepared=done and prepare is not None)

    def _make_base(self, image: Image, part: str, converted: str,
                   inspected: bool = False) -> tuple[str, str]:
        """Safety-check the verified `.part` (unless `inspected`: done while it was verified);
        convert it to raw if configured. -> (path, fmt)."""
        fmt = image.disk_format or "raw"
        # Raises for unsafe content; the base keeps the DECLARED format (a qcow2 header in an
        # image declared raw is data of a raw disk, never interpreted as qcow2).
        if not inspected:
            inspect_file(part, fmt)
        if not self.settings.force_raw_images or not converts_to_raw(fmt):
            return part, fmt
        cmd = ["qemu-img", "convert", "-q", "-f", QEMU_FORMATS[fmt], "-O", "raw", part, converted]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            raise UnsupportedFormat(f"converting image {image.id} to raw failed: "
                                    f"{done.stderr.strip()}")
        fd = os.open(converted, os.O_RDONLY | os.O_CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        inspect_file(converted, "raw")
        return converted, "raw"

    def _stage_info(self, image: Image, want: Expected, base: str, stored: str, fmt: str,
                    method: str) -> None:
        """Write `<base>.info.tmp` durably; the caller renames it to `.info` with the base."""
        info = {"image_id": image.id, "size": want.size, "algorithm": want.algorithm,
                "digest": want.digest, "format": fmt, "disk_format": image.disk_format,
                "stored_size": os.stat(stored).st_size, "method": method,
                "fetched_at": time.time()}
        tmp = base + ".info.tmp"
        with open(tmp, "w", encoding="utf-8") as handle:
            json.dump(info, handle)
            handle.flush()
            os.fsync(handle.fileno())

    # -- housekeeping -------------------------------------------------------------------

    def _remove_stale_work_files(self) -> None:
        """Left-overs of a crash: removed only when no live fetch holds their lock."""
        for name in os.listdir(self.dir):
            stem, _, suffix = name.partition(".")
            if not _BASE_NAME.fullmatch(stem) or suffix not in ("part", "converted", "info.tmp"):
                continue
            fd = self._try_lock(os.path.join(self.dir, stem))
            if fd is None:
                continue
            try:
                LOG.info("Removing stale work file %s", name)
                _remove(os.path.join(self.dir, name))
            finally:
                os.close(fd)

    def cleanup(self, in_use_image_ids: set[str]) -> list[str]:
        """Remove bases no instance uses, older than the configured age; -> removed paths."""
        if not self.settings.remove_unused_base_images:
            return []
        min_age = self.settings.min_unused_age_seconds
        in_use = {base_name(image_id) for image_id in in_use_image_ids}
        removed = []
        for name in sorted(os.listdir(self.dir)):
            if not _BASE_NAME.fullmatch(name) or name in in_use:
                continue
            path = os.path.join(self.dir, name)
            fd = self._try_lock(path)
            if fd is None:
                continue  # being fetched right now: certainly wanted
            try:
                age = time.time() - os.stat(path).st_mtime  # re-read under the lock
                if age < min_age:
                    LOG.info("Base file too young to remove: %s", path)
                    continue
                LOG.info("Removing base file: %s", path)
                _remove(path, path + ".info")
                removed.append(path)
            finally:
                os.close(fd)
        return removed


def _remove(*paths: str) -> None:
    for path in paths:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
