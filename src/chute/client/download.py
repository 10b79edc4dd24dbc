"""Download an image to a file, verifying size and hash while writing.

The data goes to a temporary name beside the target, is fsynced, and is renamed into place only
after size and hash match, so a failed or interrupted download never leaves a file that looks
whole under the requested name.

Three things overlap so the slowest one alone sets the pace: this thread reads the socket into
a ring of reused buffers, one thread per digest hashes, and a writer thread writes to the page
cache (writes into fresh page cache take 1-4 s per GiB on this machine, as long as the whole
read and hash) and starts the disk writing every 64 MiB, so the final fsync waits for the tail
only (it waited 1.6-2.2 s per GiB for the whole file before).

Where the filesystem allows it the writer bypasses the page cache (chute.transfer.odirect):
writes into fresh page cache set the download's pace in the runs where they were slow; the
same GiB through O_DIRECT took 0.67-1.04 s wall, fsync included, every time.
"""

from __future__ import annotations

import collections
import http.client
import itertools
import os
import tempfile
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from chute.client.image import Expected, Image
from chute.client.images import ImageClient
from chute.errors import IntegrityError, RemoteError, RemoteUnavailable
from chute.transfer.hashing import MultiHasher
from chute.transfer.odirect import ODirectFile
from chute.transfer.ring import ring
from chute.transfer.writeback import Writeback

CHUNK = 4 * 1024 * 1024
# Chunks read ahead of the slowest of writing and hashing (4 MiB each): enough to ride out a
# stall of either, small enough for a CLI's memory.
IN_FLIGHT = 4


@dataclass(frozen=True)
class Downloaded:
    path: str
    nbytes: int
    algorithm: str | None  # None: the image had no hash to check against


def download_image(client: ImageClient, image: Image, path: str,
                   progress: Callable[[int], None] | None = None) -> Downloaded:
    """Write the data of `image` to `path`; checked against `Expected.of(image)`, or only
    against its size when it has no usable digest (Downloaded.algorithm is then None)."""
    if image.status != "active":
        raise RemoteError(409, f"image {image.id} is {image.status}, not active: "
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
            nbytes = _stream(client, image, _FileWriter(fd, tmp), expected, progress)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        _unlink(tmp)
        raise
    return Downloaded(path, nbytes, expected.algorithm if expected else None)


class _FileWriter:
    """Writes chunks to `fd` (the file at `path`) in order in a thread: O_DIRECT where the
    filesystem takes it, else through the page cache with writeback started as it goes. The
    caller bounds what waits (write() returns each chunk's future; _stream's ring holds
    IN_FLIGHT). Leaving the `with` block waits for (or on error cancels) them."""

    def __init__(self, fd: int, path: str) -> None:
        self._fd = fd
        self._end = 0
        self._odirect = ODirectFile.open(fd, path)
        # O_DIRECT writes reach the disk as they are made; only page-cache writes need pushing.
        self._writeback = Writeback(fd) if self._odirect is None else None
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="download-write")
        self._pending: collections.deque[Future[None]] = collections.deque()

    @property
    def odirect(self) -> bool:
        return self._odirect is not None

    def write(self, chunk: memoryview) -> Future[None]:
        while self._pending and self._pending[0].done():
            self._pending.popleft().result()
        written = self._pool.submit(self._write, chunk)
        self._pending.append(written)
        return written

    def _write(self, chunk: memoryview) -> None:
        if self._odirect is not None:
            self._odirect.write(chunk)
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
        if self._odirect is not None:
            self._odirect.close()
            self._odirect = None

    def __enter__(self) -> "_FileWriter":
        return self

    def __exit__(self, *exc: object) -> None:
        self._pool.shutdown(wait=True, cancel_futures=exc[0] is not None)
        if self._odirect is not None:  # an error before flush(): the file is discarded anyway
            self._odirect.discard()
            self._odirect = None


def _stream(client: ImageClient, image: Image, out: _FileWriter, expected: Expected | None,
            progress: Callable[[int], None] | None) -> int:
    """Read the body into a ring of reused, page-aligned buffers (chute.transfer.ring): each is
    hashed and written (with O_DIRECT, from the buffer itself) while the next ones fill."""
    image_id = image.id
    hasher = MultiHasher([expected.algorithm] if expected else [], depth=IN_FLIGHT)
    slots = ring(IN_FLIGHT, CHUNK)
    nbytes = 0
    with hasher, out, client.download_body(image_id) as body:
        for turn in itertools.count():
            slot = slots[turn % IN_FLIGHT]
            got = _fill(body, slot.free(), image_id, nbytes)
            if not got:
                break
            chunk = slot.view[:got]
            slot.hashed = hasher.update(chunk)
            slot.written = out.write(chunk)
            nbytes += got
            if progress is not None:
                progress(got)
        out.flush()
        for slot in slots:
            slot.free()
        digests = hasher.hexdigests()
        _check_complete(body, image_id, nbytes)
    _verify(image, expected, nbytes, digests)
    return nbytes


def _check_complete(body: http.client.HTTPResponse, image_id: str, nbytes: int) -> None:
    """http.client's readinto reports a connection closed before Content-Length as a plain
    end of data (its read() would raise IncompleteRead): say what happened, rather than let
    the size check call a broken transfer corrupt data."""
    announced = body.getheader("Content-Length")
    if announced is not None and announced.isdigit() and nbytes < int(announced):
        raise RemoteUnavailable(f"image {image_id}: download interrupted after {nbytes} "
                                f"bytes (the server announced {announced})")


def _fill(body: http.client.HTTPResponse, buffer: memoryview, image_id: str, before: int) -> int:
    """Read into `buffer` until it is full or the body ends; -> bytes read."""
    got = 0
    try:
        while got < len(buffer):
            with buffer[got:] as rest:
                step = body.readinto(rest)
            if not step:
                break
            got += step
    except (http.client.HTTPException, OSError) as exc:
        raise RemoteUnavailable(f"image {image_id}: download interrupted after "
                                f"{before + got} bytes ({type(exc).__name__}: {exc})") from None
    return got


def _verify(image: Image, expected: Expected | None, nbytes: int,
            digests: dict[str, str]) -> None:
    image_id = image.id
    if image.size is not None and nbytes != image.size:
        raise IntegrityError(f"image {image_id}: received {nbytes} bytes, expected "
                             f"{image.size}; download discarded")
    if expected is None:
        return
    got = digests[expected.algorithm]
    if got != expected.digest:
        raise IntegrityError(
            f"image {image_id}: downloaded data does not match its {expected.field} "
            f"({expected.algorithm} {got[:16]}... != {expected.digest[:16]}...); "
            "download discarded")


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
