"""The store interface: what the image service needs from a place that keeps image bytes.

Stores are chosen by URL scheme (`file://...` -> filesystem), like ovirt-imageio's backends, so a
later S3 store is one more module with the same shape.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Protocol


@dataclass(frozen=True)
class StoredLocation:
    """Where committed image bytes live, and the metadata recorded with them at upload time."""

    url: str
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Opened:
    """An open image file: the caller reads `size` bytes from `fileobj` and closes it."""

    fileobj: BinaryIO
    size: int


# Holes shorter than this are sent as zeros inside the neighbouring extents: each extent costs
# the client one HTTP request (a round trip, ~0.2-1 ms), which outweighs a few KiB of zeros.
MIN_HOLE = 64 << 10
# Past this many extents the answer is one extent over the whole image: a badly fragmented
# file would make a JSON answer of megabytes and one request per fragment, both worse than
# streaming the image (which still leaves all-zero chunks as holes, see transfer.zeros).
MAX_EXTENTS = 10_000


@dataclass(frozen=True)
class Extents:
    """Where an image's data lies: sorted, disjoint (offset, length) pairs within `size`.

    Everything outside them reads as zeros. The chute extension `GET /v2/images/{id}/extents`
    serves this, so a compute host fetches only the data and leaves the holes unwritten.
    """

    size: int
    data: tuple[tuple[int, int], ...]


def coalesce(segments: Iterable[tuple[int, int]], size: int, min_hole: int = MIN_HOLE,
             max_count: int = MAX_EXTENTS) -> Extents:
    """Extents from a store's sorted data segments: tiny holes merged, the count capped.

    Stops reading `segments` once the cap is passed (each one may cost SEEK_DATA/SEEK_HOLE
    syscalls on a file fragmented into millions of pieces).
    """
    merged: list[tuple[int, int]] = []
    for offset, length in segments:
        if length <= 0:
            continue
        if merged and offset - (merged[-1][0] + merged[-1][1]) < min_hole:
            start = merged[-1][0]
            merged[-1] = (start, offset + length - start)
            continue
        if len(merged) == max_count:
            return Extents(size, ((0, size),))
        merged.append((offset, length))
    return Extents(size, tuple(merged))


class Writer(Protocol):
    """One upload in progress: bytes go to a temporary name until `commit()`; `settle()`
    after the database has recorded the outcome drops what marked the upload as in flight."""

    def write(self, chunk: bytes | memoryview) -> None: ...

    def commit(self) -> StoredLocation: ...

    def settle(self) -> None: ...

    def abort(self) -> None: ...


class Store(Protocol):
    schemes: tuple[str, ...]

    def writer(self, image_id: str, size_hint: int) -> Writer: ...

    def stager(self, image_id: str, size_hint: int) -> Writer: ...

    def promote(self, image_id: str) -> StoredLocation: ...

    def unstage(self, image_id: str) -> None: ...

    def open(self, url: str) -> Opened | None: ...

    def extents(self, url: str) -> Extents | None: ...

    def delete(self, url: str) -> None: ...

    def recover(self, interrupted: Sequence[str] = ()) -> dict[str, str]: ...

    def partial_ids(self) -> set[str]: ...

    def abandon(self, image_id: str, final: bool) -> list[str]: ...
