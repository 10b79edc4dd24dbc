"""The one hashing helper: several digests of one stream, computed in parallel threads.

hashlib releases the GIL while it hashes buffers larger than 2 KiB, so running MD5 and SHA-512
in their own threads lets each use a core while the caller reads and writes the next chunk.
On this machine MD5 runs at ~0.6-0.8 GB/s and SHA-512 at ~0.5-1.2 GB/s on one core; hashed one
after the other they would halve an upload's throughput.

Usage: `hasher.update(chunk)` returns at once; the chunk is hashed in the background while the
caller does its I/O. The caller must not mutate `chunk` afterwards: pass `bytes`, or a buffer it
will not reuse until the next `update()` returns (the default depth of 1: update waits for the
previous chunk), or until the handle update() returned for it says the chunk is hashed.

`blake3-blocks` is our own digest, the one chute-api records as `chute_blake3_blocks` and
chute-compute verifies fetched images with. Its definition (anyone can recompute it with plain
BLAKE3):

    split the image into blocks of BLOCK_SIZE = 4 MiB (4,194,304 bytes); the last may be
    shorter; an empty image has no blocks;
    d_i    = BLAKE3(block_i)                      (32 bytes each)
    digest = BLAKE3(b"chute-blake3-blocks-v1" + u64le(4194304) + u64le(image size)
                    + d_0 + d_1 + ... + d_(n-1)), as 64 lower-case hex characters.

Why not plain BLAKE3 of the stream: a streaming hash must see every byte in order, so a
sparse image's holes (a 4 GiB disk holding 512 MiB) were hashed as 3.5 GiB of zeros, and one
stream is one core (~2.2-3 GB/s here). Blocks make both go away: the digest of an aligned
all-zero block is one constant, so a hole costs nothing (update_zeros), and whole blocks of a
large update are hashed with BLAKE3's own thread pool on every core (~5 GB/s on these 2 cores,
the same as a pool of our own threads over blocks, measured: 5.0 vs 4.9 GB/s for 256 MiB).
"""

from __future__ import annotations

import collections
import errno
import hashlib
import os
import queue
import struct
import threading
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Iterable, Iterator

import blake3

# Below this size a thread hand-off costs more than hashing inline.
_INLINE_BELOW = 64 * 1024

BLOCKS = "blake3-blocks"
BLOCK_SIZE = 4 << 20
_DOMAIN = b"chute-blake3-blocks-v1"
_ZERO_BLOCK = bytes(BLOCK_SIZE)
_ZERO_DIGEST = blake3.blake3(_ZERO_BLOCK).digest()


def new_hash(algorithm: str) -> Any:
    """A hashlib-like object for `algorithm` (hashlib names, blake3 and blake3-blocks)."""
    if algorithm == BLOCKS:
        return Blake3Blocks()
    if algorithm == "blake3":
        return blake3.blake3(max_threads=1)
    if algorithm == "md5":
        return hashlib.md5(usedforsecurity=False)
    return hashlib.new(algorithm)


def check_algorithm(algorithm: str) -> None:
    """Raise ValueError unless `algorithm` is usable and its hex digest fits Glance's 128 chars."""
    try:
        hexdigest = new_hash(algorithm).hexdigest()
    except (ValueError, TypeError):
        # TypeError: variable-length digests (shake_*) need a length Glance cannot record.
        raise ValueError(
            f"{algorithm!r} is not a fixed-size hash algorithm this Python offers") from None
    if len(hexdigest) > 128:
        raise ValueError(f"{algorithm!r} digests are longer than 128 hex characters")


class Hashed:
    """Handle of one chunk given to MultiHasher.update: wait() returns once every digest has
    consumed it, so the caller may then reuse the chunk's buffer."""

    __slots__ = ("_left", "_lock", "_done", "_error")

    def __init__(self, consumers: int) -> None:
        self._left = consumers
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._error: BaseException | None = None
        if consumers == 0:
            self._done.set()

    def _finish(self, error: BaseException | None = None) -> None:
        with self._lock:
            self._error = self._error or error
            self._left -= 1
            if self._left == 0:
                self._done.set()

    def wait(self) -> None:
        """Block until every digest has the chunk; re-raise a digest's failure."""
        self._done.wait()
        if self._error is not None:
            raise self._error


class _HashThread:
    """One digest fed in order from its own queue, so algorithms never wait for each other."""

    def __init__(self, name: str, digest: Any) -> None:
        self.digest = digest
        self._queue: queue.SimpleQueue[tuple[bytes | memoryview, Hashed] | None] = \
            queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name=f"hash-{name}", daemon=True)
        self._thread.start()

    def put(self, chunk: bytes | memoryview, handle: Hashed) -> None:
        self._queue.put((chunk, handle))

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            chunk, handle = item
            try:
                self.digest.update(chunk)
            except BaseException as exc:  # handed to the caller through Hashed.wait
                handle._finish(exc)
            else:
                handle._finish()

    def stop(self, wait: bool = True) -> None:
        self._queue.put(None)
        if wait:
            self._thread.join()


class MultiHasher:
    """Digests of one stream under several algorithms, each hashed in its own thread.

    `depth` is how many chunks may be unhashed at once. With 1, update() first waits for the
    previous chunk (two alternating buffers are then safe). A larger depth lets a caller
    that keeps a ring of buffers run ahead of a momentarily slower digest instead of stalling
    on it: profiling a 1 GiB upload showed the receive thread idle ~15 % of the time in
    update(), waiting for whichever of MD5/SHA-512 was behind on that chunk. Such a caller
    reuses a buffer only after the Hashed handle update() returned for it says so.
    """

    def __init__(self, algorithms: Iterable[str], depth: int = 1) -> None:
        self.algorithms = list(dict.fromkeys(algorithms))
        self._hashes = {name: new_hash(name) for name in self.algorithms}
        self._depth = max(depth, 1)
        self._threads: list[_HashThread] | None = None
        self._pending: collections.deque[Hashed] = collections.deque()
        self.nbytes = 0

    def update(self, chunk: bytes | memoryview) -> Hashed:
        """Queue `chunk` for every digest; it must stay unchanged until the handle says so."""
        while len(self._pending) >= self._depth:
            self._pending.popleft().wait()
        self.nbytes += len(chunk)
        if len(chunk) < _INLINE_BELOW:
            self._wait()
            for digest in self._hashes.values():
                digest.update(chunk)
            return Hashed(0)
        if self._threads is None:
            self._threads = [_HashThread(name, digest) for name, digest in self._hashes.items()]
        handle = Hashed(len(self._threads))
        for thread in self._threads:
            thread.put(chunk, handle)
        self._pending.append(handle)
        return handle

    def _wait(self) -> None:
        while self._pending:
            self._pending.popleft().wait()

    def hexdigests(self) -> dict[str, str]:
        """Finish and return {algorithm: hex digest}; the hasher is closed afterwards."""
        try:
            self._wait()
            return {name: digest.hexdigest() for name, digest in self._hashes.items()}
        finally:
            self.close()

    def close(self) -> None:
        """Stop the threads once they have hashed what they hold (buffers are then free)."""
        threads, self._threads = self._threads, None
        for thread in threads or ():
            thread.stop()
        self._pending.clear()

    def __enter__(self) -> "MultiHasher":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        # A hasher dropped without close() must not leave its threads blocked forever.
        for thread in getattr(self, "_threads", None) or ():  # None too if __init__ failed
            thread.stop(wait=False)


def file_digest(path: str, algorithm: str, chunk_size: int = 4 << 20) -> str:
    """Hex digest of a whole file, read in large chunks."""
    digest = new_hash(algorithm)
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def update_zeros(digest: Any, nbytes: int) -> None:
    """Feed `nbytes` zeros - a hole - into `digest` (a new_hash object or a MultiHasher).

    Every reader of sparse data (copy verifier, HTTP fetch, extent fetch) hashes holes through
    here, so a digest that can account for zeros without hashing them has one place to do it:
    Blake3Blocks takes them directly; anything else gets block-aligned pieces of zeros (a
    MultiHasher's Blake3Blocks then recognises whole zero blocks at memcmp speed).
    """
    skip = getattr(digest, "update_zeros", None)
    if skip is not None:
        skip(nbytes)
        return
    zeros = memoryview(_ZERO_BLOCK)
    position = getattr(digest, "nbytes", 0)
    step = min(nbytes, BLOCK_SIZE - position % BLOCK_SIZE)
    while nbytes > 0:
        digest.update(zeros[:step])
        nbytes -= step
        step = min(nbytes, BLOCK_SIZE)


def _is_zero(block: memoryview) -> bool:
    """True for a full block of zeros: random data is rejected in O(1) (first and last byte),
    a zero block costs one memcmp (bytes.startswith takes any buffer without copying it;
    ~6.5 GB/s here, where hashing the block would cost 4 MiB of BLAKE3 on both cores)."""
    return not block[0] and not block[-1] and _ZERO_BLOCK.startswith(block)


class Blake3Blocks:
    """The `blake3-blocks` digest (module docstring), with hashlib's update/digest/hexdigest.

    Not thread-safe, like hashlib objects: MultiHasher gives it its own thread. Memory: 32
    bytes per 4 MiB block (8 KiB per GiB), since the image size heads the final hash input.
    """

    name = BLOCKS
    digest_size = 32
    block_size = BLOCK_SIZE
    max_threads = blake3.blake3.AUTO  # for each whole block of an update

    def __init__(self, data: bytes | memoryview = b"") -> None:
        self._digests = bytearray()  # d_0 + d_1 + ... of the finished blocks
        self._open = blake3.blake3(max_threads=1)  # the unfinished block
        self._filled = 0  # bytes in the unfinished block
        self.nbytes = 0
        if data:
            self.update(data)

    def update(self, data: bytes | bytearray | memoryview) -> None:
        view = memoryview(data).cast("B")
        self.nbytes += len(view)
        if self._filled:
            view = self._fill(view)
        whole = len(view) - len(view) % BLOCK_SIZE
        for offset in range(0, whole, BLOCK_SIZE):
            block = view[offset:offset + BLOCK_SIZE]
            self._digests += _ZERO_DIGEST if _is_zero(block) else blake3.blake3(
                block, max_threads=self.max_threads).digest()
        if whole < len(view):
            self._fill(view[whole:])

    def update_zeros(self, nbytes: int) -> None:
        """Account for `nbytes` zeros; whole aligned zero blocks cost nothing."""
        self.nbytes += nbytes
        if self._filled:
            step = min(nbytes, BLOCK_SIZE - self._filled)
            self._fill(memoryview(_ZERO_BLOCK)[:step])
            nbytes -= step
        self._digests += _ZERO_DIGEST * (nbytes // BLOCK_SIZE)
        if nbytes % BLOCK_SIZE:
            self._fill(memoryview(_ZERO_BLOCK)[:nbytes % BLOCK_SIZE])

    def _fill(self, view: memoryview) -> memoryview:
        """Add the start of `view` to the unfinished block; -> what did not fit."""
        step = min(len(view), BLOCK_SIZE - self._filled)
        self._open.update(view[:step])
        self._filled += step
        if self._filled == BLOCK_SIZE:
            self._digests += self._open.digest()
            self._open, self._filled = blake3.blake3(max_threads=1), 0
        return view[step:]

    def digest(self) -> bytes:
        last = self._open.digest() if self._filled else b""
        return _combine(bytes(self._digests) + last, self.nbytes)

    def hexdigest(self) -> str:
        return self.digest().hex()


def _combine(block_digests: bytes, size: int) -> bytes:
    header = _DOMAIN + struct.pack("<QQ", BLOCK_SIZE, size)
    return blake3.blake3(header + block_digests).digest()


Piece = tuple[bool, int, int]  # (is_data, offset, length), as chute.transfer.copy.segments


def _blocks(pieces: Iterable[Piece], size: int) -> Iterator[tuple[int, int, bool]]:
    """(offset, length, may_hold_data) of every block; False only for a full block in a hole."""
    offset = 0  # the next block to yield
    for is_data, start, length in pieces:
        if not is_data:
            continue
        first = start - start % BLOCK_SIZE
        for block in range(offset, first, BLOCK_SIZE):
            yield block, min(BLOCK_SIZE, size - block), block + BLOCK_SIZE > size
        offset = max(offset, first)
        data_until = start + length
        while offset < data_until:
            yield offset, min(BLOCK_SIZE, size - offset), True
            offset += BLOCK_SIZE
    for block in range(offset, size, BLOCK_SIZE):
        yield block, min(BLOCK_SIZE, size - block), block + BLOCK_SIZE > size


def blocks_digest_fd(fd: int, pieces: Iterable[Piece], size: int,
                     workers: int | None = None) -> str:
    """blake3-blocks of the first `size` bytes of `fd`, read with pread by several threads.

    For a file we may not mmap (someone else's, which could be truncated under us: touching a
    mapped page past EOF is SIGBUS). Each worker preads a whole block into its own buffer and
    hashes it, so the copy out of the page cache is spread over the cores too: measured on a
    warm 256 MiB file on XFS, 2 workers took 0.13 CPU-s and the least wall time, where a
    reader thread feeding BLAKE3's own pool took 0.16-0.20 CPU-s (3 workers on 2 cores: no
    faster). `pieces` are the file's data and holes: full blocks inside a hole are not read.
    """
    count = workers or len(os.sched_getaffinity(0))
    local = threading.local()

    def hash_block(offset: int, length: int) -> bytes:
        buffer = getattr(local, "buffer", None)
        if buffer is None:
            buffer = local.buffer = memoryview(bytearray(BLOCK_SIZE))
        done = 0
        while done < length:
            got = os.preadv(fd, [buffer[done:length]], offset + done)
            if got == 0:
                raise OSError(errno.EIO, f"file ended at {offset + done} bytes, expected {size}")
            done += got
        return blake3.blake3(buffer[:length], max_threads=1).digest()

    digests = bytearray()
    window: deque[Future[bytes] | bytes] = deque()
    with ThreadPoolExecutor(count, thread_name_prefix="hash") as pool:
        try:
            for offset, length, may_hold_data in _blocks(pieces, size):
                window.append(pool.submit(hash_block, offset, length) if may_hold_data
                              else _ZERO_DIGEST)
                while len(window) > 2 * count:
                    digests += _result(window.popleft())
            while window:
                digests += _result(window.popleft())
        finally:
            for pending in window:
                if isinstance(pending, Future):
                    pending.cancel()
    return _combine(bytes(digests), size).hex()


def _result(item: Future[bytes] | bytes) -> bytes:
    return item if isinstance(item, bytes) else item.result()
