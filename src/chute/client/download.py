"""Download an image to a file, verifying size and hash while writing.

The data goes to a temporary name beside the target, is fsynced, and is renamed into place only
after size and hash match, so a failed or interrupted download never leaves a file that looks
whole under the requested name.

Three things overlap so the slowest one alone sets the pace: this thread reads the socket, one
thread per digest hashes, and a writer thread writes to the page cache (writes into fresh page
cache take 1-4 s per GiB on this machine, as long as the whole read and hash) and starts the
disk writing every 64 MiB, so the final fsync waits for the tail only (it waited 1.6-2.2 s
per GiB for the whole file before).

Where the filesystem allows it the writer bypasses the page cache (O_DIRECT, see _DirectFile):
on this machine writing 1 GiB into fresh page cache cost 0.4 s of kernel CPU in some runs and
3.6-3.8 s in others (dd alike), and those runs set the download's pace; O_DIRECT writes of
the same GiB took 0.17-0.22 s of kernel CPU, 0.67-1.04 s wall, fsync included, every time.
"""

from __future__ import annotations

import collections
import errno
import mmap
import os
import tempfile
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import urllib3

from chute.client.images import ImageClient
from chute.errors import IntegrityError, RemoteError, RemoteUnavailable
from chute.transfer.hashing import BLOCKS, MultiHasher, new_hash
from chute.transfer.writeback import Writeback

CHUNK = 4 * 1024 * 1024
# Chunks read ahead of the slowest of writing and hashing (4 MiB each): enough to ride out a
# stall of either, small enough for a CLI's memory.
IN_FLIGHT = 4


@dataclass(frozen=True)
class Expected:
    """What the image document promises about its data."""

    size: int | None
    algorithm: str | None
    digest: str | None
    field: str | None  # which image attribute the digest came from, for messages

    @classmethod
    def of(cls, image: dict[str, Any]) -> Expected:
        """The strongest digest we can check at full speed: chute-api's blake3-blocks (several
        GB/s, where SHA-512 manages ~1 GB/s on one core), else Glance's multihash, else MD5."""
        size = image.get("size")
        if image.get("chute_blake3_blocks"):
            return cls(size, BLOCKS, image["chute_blake3_blocks"].lower(), "chute_blake3_blocks")
        algo, value = image.get("os_hash_algo"), image.get("os_hash_value")
        if algo and value and _usable(algo):
            return cls(size, algo, value.lower(), "os_hash_value")
        if image.get("checksum"):
            return cls(size, "md5", image["checksum"].lower(), "checksum")
        return cls(size, None, None, None)


@dataclass(frozen=True)
class Downloaded:
    path: str
    nbytes: int
    algorithm: str | None  # None: the image had no hash to check against


def _usable(algorithm: str) -> bool:
    try:
        new_hash(algorithm)
    except (ValueError, TypeError):
        return False
    return True


def download_image(client: ImageClient, image: dict[str, Any], path: str,
                   progress: Callable[[int], None] | None = None) -> Downloaded:
    """Write the data of `image` (its document, as returned by `client.get`) to `path`."""
    if image.get("status") != "active":
        raise RemoteError(409, f"image {image['id']} is {image.get('status')}, not active: "
                               "it has no data to download")
    expected = Expected.of(image)
    directory = os.path.dirname(os.path.abspath(path))
    try:
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(path)}.",
                                   suffix=".part")
    except OSError as exc:  # name the directory the user gave, not our temporary name
        raise OSError(exc.errno, f"cannot write in {directory}: {exc.strerror}") from None
    try:
        try:
            nbytes = _stream(client, image["id"], _FileWriter(fd, tmp), expected, progress)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        _unlink(tmp)
        raise
    return Downloaded(path, nbytes, expected.algorithm)


ALIGN = 4096  # O_DIRECT wants buffer, offset and length aligned to the logical block size


class _DirectFile:
    """Sequential writes to `path` through a second descriptor opened with O_DIRECT.

    Bytes are staged in a page-aligned mapping and written in multiples of ALIGN; the last
    partial block goes through the ordinary descriptor at close(), and fsync (the caller's)
    stays the durability check for both. open() gives None where O_DIRECT is refused (tmpfs
    answers EINVAL); a write refused later switches the rest to the ordinary descriptor.
    """

    def __init__(self, fd: int, direct: int) -> None:
        self._fd, self._direct = fd, direct
        self._stage = mmap.mmap(-1, CHUNK + ALIGN, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        self._view = memoryview(self._stage)
        self._held = 0  # staged bytes not yet written
        self._offset = 0  # file offset of the first staged byte

    @classmethod
    def open(cls, fd: int, path: str) -> _DirectFile | None:
        flag = getattr(os, "O_DIRECT", 0)  # Linux and the BSDs have it; macOS does not
        if not flag:
            return None
        try:
            direct = os.open(path, os.O_WRONLY | os.O_CLOEXEC | flag)
        except OSError:
            return None
        return cls(fd, direct)

    def write(self, chunk: bytes) -> None:
        view = memoryview(chunk)
        while view:
            step = min(len(view), CHUNK + ALIGN - self._held)
            self._view[self._held:self._held + step] = view[:step]
            self._held += step
            view = view[step:]
            self._drain(self._held - self._held % ALIGN)

    def _drain(self, nbytes: int) -> None:
        """Write the first `nbytes` staged bytes and keep the rest at the stage's start."""
        done = 0
        while done < nbytes:
            # Released even when the write raises (ENOSPC): a live slice would keep discard()
            # from closing the stage.
            with self._view[done:nbytes] as part:
                done += self._write_part(part, self._offset + done)
        rest = self._held - nbytes
        self._view[:rest] = self._view[nbytes:self._held]
        self._held, self._offset = rest, self._offset + nbytes

    def _write_part(self, part: memoryview, offset: int) -> int:
        if self._direct >= 0:
            try:
                return os.write(self._direct, part)
            except OSError as exc:
                if exc.errno != errno.EINVAL:
                    raise
                self._close_direct()
        return os.pwrite(self._fd, part, offset)

    def _close_direct(self) -> None:
        if self._direct >= 0:
            os.close(self._direct)
            self._direct = -1

    def close(self) -> None:
        """Write the partial last block the ordinary way, then release what we hold."""
        try:
            if self._held:
                self._close_direct()
                self._drain(self._held)
        finally:
            self.discard()

    def discard(self) -> None:
        """Release the O_DIRECT descriptor and the stage without writing what it holds."""
        self._close_direct()
        self._view.release()
        self._stage.close()


class _FileWriter:
    """Writes chunks to `fd` (the file at `path`) in order in a thread: O_DIRECT where the
    filesystem takes it, else through the page cache with writeback started as it goes; at
    most IN_FLIGHT chunks wait. Leaving the `with` block waits for (or on error cancels) them."""

    def __init__(self, fd: int, path: str) -> None:
        self._fd = fd
        self._end = 0
        self._direct = _DirectFile.open(fd, path)
        # O_DIRECT writes reach the disk as they are made; only page-cache writes need pushing.
        self._writeback = Writeback(fd) if self._direct is None else None
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="download-write")
        self._pending: collections.deque[Future[None]] = collections.deque()

    @property
    def direct(self) -> bool:
        return self._direct is not None

    def write(self, chunk: bytes) -> None:
        while len(self._pending) >= IN_FLIGHT:
            self._pending.popleft().result()
        self._pending.append(self._pool.submit(self._write, chunk))

    def _write(self, chunk: bytes) -> None:
        if self._direct is not None:
            self._direct.write(chunk)
            return
        view = memoryview(chunk)
        while view:
            view = view[os.write(self._fd, view):]
        self._end += len(chunk)
        if self._writeback is not None:
            self._writeback.written(self._end)

    def flush(self) -> None:
        while self._pending:
            self._pending.popleft().result()
        if self._direct is not None:
            self._direct.close()
            self._direct = None

    def __enter__(self) -> "_FileWriter":
        return self

    def __exit__(self, *exc: object) -> None:
        self._pool.shutdown(wait=True, cancel_futures=exc[0] is not None)
        if self._direct is not None:  # an error before flush(): the file is discarded anyway
            self._direct.discard()
            self._direct = None


def _stream(client: ImageClient, image_id: str, out: _FileWriter, expected: Expected,
            progress: Callable[[int], None] | None) -> int:
    hasher = MultiHasher([expected.algorithm] if expected.algorithm else [], depth=IN_FLIGHT)
    nbytes = 0
    with hasher, out, client.open_download(image_id) as resp:
        while True:
            # raw.read (requests asks urllib3 not to decode) hands over http.client's bytes
            # as they are; raw.readinto would copy each chunk once more. Being immutable,
            # the chunk can be hashed and written in the background while the next is read.
            try:
                chunk = resp.raw.read(CHUNK)
            except (urllib3.exceptions.HTTPError, OSError) as exc:
                raise RemoteUnavailable(f"image {image_id}: download interrupted after "
                                        f"{nbytes} bytes ({exc})") from None
            if not chunk:
                break
            hasher.update(chunk)
            out.write(chunk)
            nbytes += len(chunk)
            if progress is not None:
                progress(len(chunk))
        out.flush()
        digests = hasher.hexdigests()
    _verify(image_id, expected, nbytes, digests)
    return nbytes


def _verify(image_id: str, expected: Expected, nbytes: int, digests: dict[str, str]) -> None:
    if expected.size is not None and nbytes != expected.size:
        raise IntegrityError(f"image {image_id}: received {nbytes} bytes, expected "
                             f"{expected.size}; download discarded")
    if expected.algorithm is None:
        return
    got = digests[expected.algorithm]
    if got != expected.digest:
        assert expected.digest is not None  # an algorithm always comes with its digest
        raise IntegrityError(
            f"image {image_id}: downloaded data does not match its {expected.field} "
            f"({expected.algorithm} {got[:16]}... != {expected.digest[:16]}...); "
            "download discarded")


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
