"""One pass over an upload body: limit, hash, inspect and store each chunk as it arrives.

The request thread only reads: each chunk lands in one of RING reused buffers (straight from
the socket, see chute.images.body; chute.transfer.ring), and is then hashed in
chute.transfer.hashing's threads (one per digest) and written by a writer thread while the
next buffers fill (with O_DIRECT from the buffer itself where the store's filesystem allows,
see chute.transfer.odirect). MD5 +
SHA-512 + BLAKE3 thus cost no more wall time than the slowest of them, and no step waits for
another unless it falls RING chunks behind. The format inspector sees the same chunks: the
data is read once.
"""

from __future__ import annotations

import itertools
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable, cast

from chute.errors import Invalid, TooLarge
from chute.formats import FormatInfo, StreamInspector
from chute.images.body import Body
from chute.stores.base import Writer
from chute.transfer.blockdigest import BLOCKS
from chute.transfer.hashing import MultiHasher
from chute.transfer.ring import ring


@dataclass(frozen=True)
class Limits:
    """What the body may not exceed; `declared` is the size the client announced (or None)."""

    declared: int | None
    size_cap: int
    quota_left: int | None  # None: no user_storage_quota


@dataclass(frozen=True)
class Received:
    size: int
    checksum: str
    os_hash_algo: str
    os_hash_value: str
    blake3_blocks: str
    format: FormatInfo | None


def _check(total: int, limits: Limits) -> None:
    if total > limits.size_cap:
        raise TooLarge(f"The incoming image is too large: it exceeds image_size_cap "
                       f"({limits.size_cap} bytes)")
    if limits.quota_left is not None and total > limits.quota_left:
        raise TooLarge(f"Image exceeds the storage quota: {limits.quota_left} bytes left")
    if limits.declared is not None and total > limits.declared:
        raise Invalid(f"Size exceeds: expected {limits.declared} bytes, got more")


def _most(limits: Limits) -> int:
    """The most bytes the body may hold: the reader never asks for more than one byte past it,
    so a body running past its declared size (or the cap, or the quota) is refused at the
    first byte too many, without waiting for, reading, hashing or writing the rest."""
    most = limits.size_cap
    if limits.quota_left is not None:
        most = min(most, limits.quota_left)
    if limits.declared is not None:
        most = min(most, limits.declared)
    return most


# Buffers in flight: one being filled from the socket while up to RING - 1 earlier ones are
# still being hashed or written, so a digest or a write that is briefly slower (dirty-page
# throttling, a thread descheduled) does not stall the reading of the socket at once.
# Measured on 1 GiB raw PUTs, 2 x 5 alternated rounds, medians: RING 4 221/192 MiB/s,
# 3 226/204, 2 -/182; peak RSS of the service 135.1 -> 131.3-132.9 MiB with 3. Two chunks
# of slack are as good as three; one starts to show.
RING = 3


class _BackgroundWriter:
    """Writes each chunk in a thread, in order, while the next ones are read and hashed.

    Profiling a 1 GiB upload showed the request thread spending a quarter of its time in
    write(2) (page-cache copies and dirty-page throttling) instead of reading; overlapping the
    two lets the slowest hash, not the sum of the I/O steps, set the pace. Leaving the `with`
    block always waits for the writes under way, so the caller may then abort or commit.
    """

    def __init__(self, writer: Writer) -> None:
        self._writer = writer
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="write")

    def write(self, chunk: bytes | memoryview) -> Future[None]:
        """Queue `chunk`; the future is done (or raises the write's error) once it is written."""
        return self._pool.submit(self._writer.write, chunk)

    def __enter__(self) -> "_BackgroundWriter":
        return self

    def __exit__(self, *exc: object) -> None:
        self._pool.shutdown(wait=True, cancel_futures=exc[0] is not None)


# Copies handed to the format inspector are smaller than glibc's initial mmap threshold
# (128 KiB), so they neither raise it (see chute.transfer.ring) nor cost a mapping each.
_INSPECT_PIECE = 64 << 10


def _inspect(inspector: StreamInspector, chunk: bytes | memoryview) -> None:
    """Feed `chunk` to `inspector`: copies while it is undecided, since the inspectors may keep
    what they are fed and a view of a reused buffer would change under them; once decided
    (raw: after the first MiB) they keep nothing and the rest is only counted."""
    view = memoryview(chunk)
    offset = 0
    while offset < len(view) and not inspector.decided():
        inspector.feed(bytes(view[offset:offset + _INSPECT_PIECE]))
        offset += _INSPECT_PIECE
    if offset < len(view):
        inspector.feed(cast(bytes, view[offset:]))


def receive(body: Body, writer: Writer, limits: Limits, *, hashing_algorithm: str,
            inspect_as: str | None, require_format_match: bool, chunk_size: int,
            keep_going: Callable[[int], None] | None = None) -> Received:
    """Copy `body` into `writer`; raise (leaving cleanup to the caller) on any problem.

    `inspect_as` is the disk_format to check the content against (None: no inspection, as for
    container formats other than bare). `keep_going(total)` is called about every GiB so the
    caller can abort an upload whose image was deleted meanwhile.
    """
    inspector = StreamInspector() if inspect_as else None
    total, next_check, most = 0, 1 << 30, _most(limits)
    slots = ring(RING, chunk_size)
    with MultiHasher(["md5", hashing_algorithm, BLOCKS], depth=RING) as hasher, \
            _BackgroundWriter(writer) as background:
        for turn in itertools.count():
            slot = slots[turn % RING]
            buffer = slot.free()
            if most - total < len(buffer):  # near the end: a view, not a copy
                buffer = buffer[:most - total + 1]
            chunk = body.read_chunk(buffer)
            if not chunk:
                break
            total += len(chunk)
            _check(total, limits)
            slot.hashed = hasher.update(chunk)
            slot.written = background.write(chunk)
            if inspector is not None:
                _inspect(inspector, chunk)
            if keep_going is not None and total >= next_check:
                keep_going(total)
                next_check += 1 << 30
        if limits.declared is not None and total != limits.declared:
            raise Invalid(f"Size mismatch: expected {limits.declared} bytes, got {total} bytes")
        for slot in slots:
            slot.free()
        digests = hasher.hexdigests()
    info = inspector.finish(inspect_as, require_format_match) if inspector and inspect_as else None
    return Received(total, digests["md5"], hashing_algorithm, digests[hashing_algorithm],
                    digests[BLOCKS], info)
