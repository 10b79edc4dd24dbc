"""The one hashing helper: several digests of one stream, computed in parallel threads.

hashlib releases the GIL while it hashes buffers larger than 2 KiB, so running MD5 and SHA-512
in their own threads lets each use a core while the caller reads and writes the next chunk.
On this machine MD5 runs at ~0.6-0.8 GB/s and SHA-512 at ~0.5-1.2 GB/s on one core; hashed one
after the other they would halve an upload's throughput.

Usage: `hasher.update(chunk)` returns at once; the chunk is hashed in the background while the
caller does its I/O. The caller must not mutate `chunk` afterwards: pass `bytes`, or a buffer it
will not reuse until the next `update()` returns (the default depth of 1: update waits for the
previous chunk), or until the handle update() returned for it says the chunk is hashed.

The `blake3-blocks` digest (os_glance_blake3_blocks) is defined in chute.transfer.blockdigest.
"""

from __future__ import annotations

import collections
import hashlib
import queue
import threading
from dataclasses import dataclass
from typing import Iterable, Protocol

import blake3

from chute.transfer.blockdigest import BLOCK_SIZE, BLOCKS, ZERO_BLOCK, Blake3Blocks

# Below this size a thread hand-off costs more than hashing inline.
_INLINE_BELOW = 64 * 1024



class Digest(Protocol):
    """What hashlib, blake3 and Blake3Blocks objects have in common: all chute needs of one."""

    def update(self, data: bytes | memoryview, /) -> object: ...

    def hexdigest(self) -> str: ...


def new_hash(algorithm: str) -> Digest:
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


@dataclass(frozen=True)
class _Hole:
    """`nbytes` zeros queued without a buffer: each digest takes them its cheapest way."""

    nbytes: int


class _HashThread:
    """One digest fed in order from its own queue, so algorithms never wait for each other."""

    def __init__(self, name: str, digest: Digest) -> None:
        self.digest = digest
        self._queue: queue.SimpleQueue[tuple[bytes | memoryview | _Hole, Hashed] | None] = \
            queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name=f"hash-{name}", daemon=True)
        self._thread.start()

    def put(self, chunk: bytes | memoryview | _Hole, handle: Hashed) -> None:
        self._queue.put((chunk, handle))

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            chunk, handle = item
            try:
                if isinstance(chunk, _Hole):
                    update_zeros(self.digest, chunk.nbytes)
                else:
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
        return self._enqueue(chunk)

    def update_zeros(self, nbytes: int) -> Hashed:
        """Queue a hole of `nbytes` zeros (chute.transfer.hashing.update_zeros calls this):
        blake3-blocks counts its whole zero blocks without hashing or even comparing them."""
        while len(self._pending) >= self._depth:
            self._pending.popleft().wait()
        self.nbytes += nbytes
        return self._enqueue(_Hole(nbytes))

    def _enqueue(self, item: bytes | memoryview | _Hole) -> Hashed:
        if self._threads is None:
            self._threads = [_HashThread(name, digest) for name, digest in self._hashes.items()]
        handle = Hashed(len(self._threads))
        for thread in self._threads:
            thread.put(item, handle)
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


def update_zeros(digest: Digest | MultiHasher, nbytes: int) -> None:
    """Feed `nbytes` zeros - a hole - into `digest` (a new_hash object or a MultiHasher).

    Every reader of sparse data (copy verifier, HTTP fetch, extent fetch) hashes holes through
    here, so a digest that can account for zeros without hashing them has one place to do it:
    Blake3Blocks and MultiHasher take them directly (whole zero blocks cost nothing); a plain
    hashlib digest is fed zeros from one shared block.
    """
    skip = getattr(digest, "update_zeros", None)
    if skip is not None:
        skip(nbytes)
        return
    zeros = memoryview(ZERO_BLOCK)
    while nbytes > 0:
        step = min(nbytes, BLOCK_SIZE)
        digest.update(zeros[:step])
        nbytes -= step
