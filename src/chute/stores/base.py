"""The store interface: what the image service needs from a place that keeps image bytes.

Stores are chosen by URL scheme (`file://...` -> filesystem), like ovirt-imageio's backends, so a
later S3 store is one more module with the same shape.
"""

from __future__ import annotations

from collections.abc import Sequence
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


class Writer(Protocol):
    """One upload in progress: bytes go to a temporary name until `commit()`."""

    def write(self, chunk: bytes | memoryview) -> None: ...

    def commit(self) -> StoredLocation: ...

    def abort(self) -> None: ...


class Store(Protocol):
    schemes: tuple[str, ...]

    def writer(self, image_id: str, size_hint: int) -> Writer: ...

    def open(self, url: str) -> Opened | None: ...

    def delete(self, url: str) -> None: ...

    def recover(self, interrupted: Sequence[str] = ()) -> dict[str, str]: ...
