"""The one HTTP download engine (`Receiver`), and the CLI's `chute image-download` on it.

Both HTTP downloads of image data go through `Receiver`: the CLI's (`download_image`, below)
and chute-compute's (chute.compute.fetch.http: the whole image, or only its data extents,
resumed by the image service after a drop). They differ in what they ask the server for, not
in how the bytes are read, hashed and written.

Three things overlap so the slowest one alone sets the pace: the caller's thread reads the
body with readinto() straight into a ring of reused, page-aligned buffers
(chute.transfer.ring), one thread per digest hashes each buffer (chute.transfer.hashing), and
a writer thread writes it from the buffer itself (chute.client.sink: O_DIRECT where the
filesystem allows, else the page cache with writeback started as it goes) while the next
buffers fill. No byte is copied in user space: the kernel reads into the buffer, and an
O_DIRECT write takes it from there.

`download_to_stream` writes to stdout (`chute image-download ID`, as `glance image-download`):
the same Receiver, with plain writes; its bytes cannot be taken back, so a mismatch is said
after they went. `download_image` writes to a temporary name beside the target, fsyncs it and
renames it into place only after size and hash match, so a failed or interrupted download
never leaves a file that looks whole under the requested name.

Where a 1 GiB CLI download's time goes against `cp` + `sync` of the same file (issue 15, 2 shared
cores, load 5-14, 2026-12-07). CPU-s per GiB: the CLI 0.56-0.71 (BLAKE3 ~0.18, the socket
copy ~0.1-0.16, its start ~0.08, the rest thread hand-offs and Python), HAProxy 0.27-0.41,
the worker 0.08-0.12; cp + sync 0.33-0.40: on busy cores the download gets CPU in that
proportion. What cold adds is mostly the CLI's own start: importing its ~190 modules with the
page cache dropped took 0.3-1.9 s with the load (0.09 s warm; cp starts in milliseconds),
while the disk had nothing in flight 40-45% of a cold download's time. Tried and dropped:
- BLAKE3 on the hash thread alone (max_threads=1) instead of its pool: the CLI -0.03 to -0.08
  CPU-s, MiB/s 0.87-1.16x over four sets of 6-10 alternated pairs, no measurable gain.
- 8 MiB chunks, 3 in flight (half the hand-offs, two O_DIRECT requests per write): the same
  CPU, MiB/s 1.03x warm (8 pairs), cold 1.08x then 0.92x (8 and 10 pairs).
- Importing 12 fewer modules (mkstemp written out, as tempfile's shutil loads zlib, bz2 and
  lzma; ctypes only for page-cache writes): a 4 MiB download with the page cache dropped
  0.86 s against 0.97 s (10 pairs, load 6-14), then 0.39 against 0.38 s (12 pairs, load 5-6);
  1 GiB cold 1.15x then 0.96x (8 and 10 pairs): the start's cost is the modules every command
  needs (click, http.client and email, json), not these.
- Two byte ranges at once, or a deeper read-ahead in the server, for a queue depth of 2 on a
  cold read: the read is not what bounds it. A GiB read (buffered, 8 MiB read-ahead) while a GiB
  is written with 4 MiB O_DIRECT writes took 1.27-2.18 s, the write alone 0.80-1.21 s, the
  read alone 0.43-0.70 s (dd, caches dropped).
"""

from __future__ import annotations

import http.client
import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from chute.client.image import Expected, Image
from chute.client.images import ImageClient
from chute.client.sink import FileSink
from chute.errors import IntegrityError, RemoteError, RemoteUnavailable
from chute.transfer.hashing import MultiHasher
from chute.transfer.ring import Slot, ring
from chute.transfer.zeros import all_zero

CHUNK = 4 * 1024 * 1024
# Chunks read ahead of the slowest of writing and hashing (4 MiB each): enough to ride out a
# stall of either, small enough for a CLI's memory.
IN_FLIGHT = 4

ReadInto = Callable[[memoryview], int]  # fills a buffer, -> bytes read (0: the source ended)


class Receiver:
    """One image's bytes into one file, in order, hashed on the way (the module docstring).

    `written` counts the image's bytes done in order - received, or a hole hashed as zeros -
    so a caller that resumes after a drop asks for the bytes from there. With `holes`, chunks
    that are all zeros are hashed as zeros and left unwritten (chute.transfer.zeros: the caller
    ftruncates to the size at the end); without, every byte is written.

    Buffers are filled up to the next CHUNK boundary of the image, whatever the source's
    framing, so blake3-blocks hashes whole 4 MiB blocks (BLAKE3's threads) and a resumed or
    extent-by-extent download writes whole aligned blocks with O_DIRECT.
    """

    def __init__(self, fd: int, path: str, algorithms: Sequence[str], holes: bool = False,
                 odirect: bool = True, progress: Callable[[int], None] | None = None,
                 stream: bool = False) -> None:
        self._fd, self._path, self._algorithms = fd, path, list(algorithms)
        self._holes, self._odirect, self._progress = holes and not stream, odirect, progress
        self._stream = stream  # a pipe or terminal: plain write(2), no holes, no restart
        self._slots = ring(IN_FLIGHT, CHUNK)
        self._turn = 0
        self.written = 0
        self.received = 0  # bytes that came from a source (holes skipped are not)
        self._hasher, self._sink = self._start()

    def _start(self) -> tuple[MultiHasher, FileSink]:
        return (MultiHasher(self._algorithms, depth=IN_FLIGHT),
                FileSink(self._fd, self._path, self._odirect, self._stream))

    @property
    def odirect(self) -> bool:
        return self._sink.odirect

    def receive(self, readinto: ReadInto, end: int | None = None) -> bool:
        """Take bytes from `readinto` up to the image offset `end` (None: until the source
        ends); -> False when the source ended first. Bytes read before a failure of the
        source count as done (progress for a resumed attempt)."""
        while end is None or self.written < end:
            room = CHUNK - self.written % CHUNK
            if end is not None:
                room = min(room, end - self.written)
            slot = self._slots[self._turn % IN_FLIGHT]
            self._turn += 1
            got = _fill(readinto, slot, room, self._take)
            if got < room:
                return False
        return True

    def _take(self, slot: Slot, got: int) -> None:
        chunk = slot.view[:got]
        if self._holes and all_zero(chunk):
            slot.hashed = self._hasher.update_zeros(got)
            slot.written = self._sink.skip(got)
        else:
            slot.hashed = self._hasher.update(chunk)
            slot.written = self._sink.write(chunk)
        self.written += got
        self.received += got
        if self._progress is not None:
            self._progress(got)

    def skip(self, nbytes: int) -> None:
        """A hole of `nbytes`: nothing written, zeros hashed (the digest is of the logical
        content)."""
        if nbytes > 0:
            self._hasher.update_zeros(nbytes)
            self._sink.skip(nbytes)
            self.written += nbytes

    def finish(self) -> dict[str, str]:
        """Wait for every write and digest; -> {algorithm: hex digest}. Write failures
        (ENOSPC) raise OSError here or from receive()."""
        self._sink.flush()
        for slot in self._slots:
            slot.free()
        return self._hasher.hexdigests()

    def restart(self) -> None:
        """Start over from byte 0 (a server that ignored Range sends the whole image)."""
        self.close()
        os.ftruncate(self._fd, 0)
        self.written = 0
        self._hasher, self._sink = self._start()

    def close(self) -> None:
        """Stop writing (what has not started is dropped) and hashing; buffers are free."""
        self._sink.close()
        self._hasher.close()
        for slot in self._slots:
            slot.hashed = slot.written = None

    def __enter__(self) -> Receiver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _fill(readinto: ReadInto, slot: Slot, room: int,
          take: Callable[[Slot, int], None]) -> int:
    """Read into `slot` until `room` bytes or the source's end; hand what came to `take`,
    even when the source fails midway; -> bytes read."""
    buffer = slot.free()
    got = 0
    try:
        while got < room:
            with buffer[got:room] as rest:
                step = readinto(rest)
            if not step:
                break
            got += step
    finally:
        if got:
            take(slot, got)
    return got


@dataclass(frozen=True)
class Downloaded:
    path: str
    nbytes: int
    algorithm: str | None  # None: the image had no hash to check against


def download_image(client: ImageClient, image: Image, path: str,
                   progress: Callable[[int], None] | None = None) -> Downloaded:
    """Write the data of `image` to `path`; checked against `Expected.of(image)`, or only
    against its size when it has no usable digest (Downloaded.algorithm is then None).

    The file gets the mode a new file gets from the umask (0666 & ~umask), as `glance
    image-download` gives it, not mkstemp's 0600."""
    expected = _expected(image)
    directory = os.path.dirname(os.path.abspath(path))
    try:
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(path)}.",
                                   suffix=".part")
    except OSError as exc:  # name the directory the user gave, not our temporary name
        raise OSError(exc.errno, f"cannot write in {directory}: {exc.strerror}") from None
    try:
        try:
            os.fchmod(fd, 0o666 & ~_umask())
            nbytes = _stream(client, image, Receiver(fd, tmp, _algorithms(expected),
                                                     progress=progress), expected)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        _unlink(tmp)
        raise
    return Downloaded(path, nbytes, expected.algorithm if expected else None)


def download_to_stream(client: ImageClient, image: Image, fd: int, name: str = "stdout",
                       progress: Callable[[int], None] | None = None) -> Downloaded:
    """Write the data of `image` to the open stream `fd` (stdout, a pipe), through the same
    Receiver as a file, and check it the same way. A stream cannot be taken back: on a
    mismatch or a broken transfer the bytes already written stay there, and the error says
    so (the caller's exit status is what tells a pipeline to discard them)."""
    expected = _expected(image)
    receiver = Receiver(fd, name, _algorithms(expected), odirect=False, progress=progress,
                        stream=True)
    try:
        nbytes = _stream(client, image, receiver, expected,
                         fate=f"the bytes already written to {name} are not the image")
    except RemoteUnavailable as exc:
        raise RemoteUnavailable(f"{exc.message}; the {receiver.received} bytes already "
                                f"written to {name} are not the whole image") from None
    return Downloaded(name, nbytes, expected.algorithm if expected else None)


def _expected(image: Image) -> Expected | None:
    if image.status != "active":
        raise RemoteError(409, f"image {image.id} is {image.status}, not active: "
                               "it has no data to download")
    return Expected.of(image)


def _umask() -> int:
    mask = os.umask(0o077)  # read it the only portable way, and put it back at once
    os.umask(mask)
    return mask


def _algorithms(expected: Expected | None) -> list[str]:
    return [expected.algorithm] if expected else []


def _stream(client: ImageClient, image: Image, receiver: Receiver,
            expected: Expected | None, fate: str = "download discarded") -> int:
    """The whole body, read with http.client's readinto into the receiver's buffers."""
    with receiver, client.download_body(image.id) as body:
        source = _Body(body, image.id)
        receiver.receive(source.readinto)
        digests = receiver.finish()
        _check_complete(body, image.id, receiver.written)
    _verify(image, expected, receiver.written, digests, fate)
    return receiver.written


class _Body:
    """http.client's readinto, with a connection that breaks said as RemoteUnavailable."""

    def __init__(self, body: http.client.HTTPResponse, image_id: str) -> None:
        self._body, self._image_id = body, image_id
        self.nbytes = 0

    def readinto(self, buffer: memoryview) -> int:
        try:
            step = self._body.readinto(buffer)
        except (http.client.HTTPException, OSError) as exc:
            raise RemoteUnavailable(f"image {self._image_id}: download interrupted after "
                                    f"{self.nbytes} bytes ({type(exc).__name__}: {exc})"
                                    ) from None
        self.nbytes += step
        return step


def _check_complete(body: http.client.HTTPResponse, image_id: str, nbytes: int) -> None:
    """http.client's readinto reports a connection closed before Content-Length as a plain
    end of data (its read() would raise IncompleteRead): say what happened, rather than let
    the size check call a broken transfer corrupt data."""
    announced = body.getheader("Content-Length")
    if announced is not None and announced.isdigit() and nbytes < int(announced):
        raise RemoteUnavailable(f"image {image_id}: download interrupted after {nbytes} "
                                f"bytes (the server announced {announced})")


def _verify(image: Image, expected: Expected | None, nbytes: int,
            digests: dict[str, str], fate: str) -> None:
    image_id = image.id
    if image.size is not None and nbytes != image.size:
        raise IntegrityError(f"image {image_id}: received {nbytes} bytes, expected "
                             f"{image.size}; {fate}")
    if expected is None:
        return
    got = digests[expected.algorithm]
    if got != expected.digest:
        raise IntegrityError(
            f"image {image_id}: downloaded data does not match its {expected.field} "
            f"({expected.algorithm} {got[:16]}... != {expected.digest[:16]}...); "
            f"{fate}")


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
