"""An image as the images API describes it, parsed once, and what its bytes must be.

The Glance document is untrusted JSON: `Image.parse` keeps each field only when it has the
type Glance gives it (a hostile or broken server's `"size": "12"` is no size), so nothing past
this module has to ask what a field holds.

`Expected` is the one rule for verifying an image's bytes, used by the CLI download and by
compute alike. The digest, strongest first:
- `os_glance_blake3_blocks`, the property chute-api records at upload (the `blake3-blocks` digest
  of chute.transfer.hashing): ~5 GB/s on these 2 cores and holes skipped, where SHA-512 runs
  ~1 GB/s on one core and hashes every zero of a sparse image;
- the multihash (`os_hash_algo` / `os_hash_value`) when this host can compute its algorithm;
- the legacy MD5 `checksum`, as glanceclient does.
`multihash_only` (compute's `[glance] verify_digest = os_hash_value`) skips the first and the
last. An image with none of these has no `Expected`: compute refuses its data
(`Expected.required`), the CLI checks the size alone and says so (its long-standing
behaviour, kept so a download of any Glance image still works).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from chute.errors import IntegrityError, TransferError
from chute.transfer.blockdigest import BLOCKS
from chute.transfer.hashing import check_algorithm

MISMATCH = "image data does not match its checksum"
BLOCKS_FIELD = "os_glance_blake3_blocks"  # the image property holding the blake3-blocks digest


@dataclass(frozen=True)
class Location:
    """Where the image service says the bytes lie; `metadata` carries the filesystem id and
    mountpoint the shared-filesystem path needs."""

    url: str
    metadata: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def parse_all(cls, entries: object) -> list[Location]:
        """The entries with a usable URL, in order, each URL once (the first wins)."""
        found: dict[str, Location] = {}
        for entry in entries if isinstance(entries, list) else []:
            url = entry.get("url") if isinstance(entry, dict) else None
            if isinstance(url, str) and url and url not in found:
                metadata = entry.get("metadata")
                found[url] = cls(url, metadata if isinstance(metadata, dict) else {})
        return list(found.values())


@dataclass(frozen=True)
class Image:
    """The fields chute acts on; `doc` keeps the whole document for display."""

    id: str
    status: str | None = None
    size: int | None = None
    virtual_size: int | None = None
    disk_format: str | None = None
    container_format: str | None = None
    min_ram: int = 0  # MiB the image needs (Glance's default 0: no minimum)
    min_disk: int = 0  # GiB of root disk the image needs
    checksum: str | None = None
    os_hash_algo: str | None = None
    os_hash_value: str | None = None
    chute_blake3_blocks: str | None = None
    locations: tuple[Location, ...] = ()
    direct_url: str | None = None
    doc: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def parse(cls, doc: Mapping[str, Any]) -> Image:
        return cls(id=str(doc.get("id")), status=_text(doc.get("status")),
                   size=_count(doc.get("size")), virtual_size=_count(doc.get("virtual_size")),
                   disk_format=_text(doc.get("disk_format")),
                   container_format=_text(doc.get("container_format")),
                   min_ram=_count(doc.get("min_ram")) or 0,
                   min_disk=_count(doc.get("min_disk")) or 0,
                   checksum=_text(doc.get("checksum")),
                   os_hash_algo=_text(doc.get("os_hash_algo")),
                   os_hash_value=_text(doc.get("os_hash_value")),
                   chute_blake3_blocks=_text(doc.get(BLOCKS_FIELD)),
                   locations=tuple(Location.parse_all(doc.get("locations"))),
                   direct_url=_text(doc.get("direct_url")), doc=doc)


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _count(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


@dataclass(frozen=True)
class Expected:
    """The size and the one digest an image's bytes must have."""

    size: int
    algorithm: str  # a chute.transfer.hashing algorithm name
    digest: str  # lower-case hex
    field: str  # the image attribute the digest came from, for messages

    @classmethod
    def of(cls, image: Image, multihash_only: bool = False) -> Expected | None:
        """The strongest digest this host can check (the module docstring's rule); None
        when the image has no size or no usable digest."""
        if image.size is None:
            return None
        if image.chute_blake3_blocks and not multihash_only:
            return cls(image.size, BLOCKS, image.chute_blake3_blocks.lower(), BLOCKS_FIELD)
        if image.os_hash_algo and image.os_hash_value and _usable(image.os_hash_algo):
            return cls(image.size, image.os_hash_algo, image.os_hash_value.lower(),
                       "os_hash_value")
        if image.checksum and not multihash_only:
            return cls(image.size, "md5", image.checksum.lower(), "checksum")
        return None

    @classmethod
    def required(cls, image: Image, multihash_only: bool = False) -> Expected:
        """As `of`, but an image whose data cannot be verified is refused (TransferError)."""
        if image.size is None:
            raise TransferError(f"image {image.id} has no size: refusing unverifiable data")
        want = cls.of(image, multihash_only)
        if want is not None:
            return want
        if image.os_hash_algo and image.os_hash_value:  # named, but not one we can compute
            try:
                check_algorithm(image.os_hash_algo)
            except ValueError as exc:
                raise TransferError(f"image {image.id}: {exc}") from None
        raise TransferError(f"image {image.id} has no usable checksum: refusing unverifiable data")

    def check(self, nbytes: int, digest: str | None) -> str | None:
        """None when the bytes match; else a sentence saying what differs."""
        if nbytes != self.size:
            return f"{nbytes} bytes where the image has {self.size}"
        if (digest or "").lower() != self.digest:
            return f"{self.algorithm} {digest} does not match {self.field} {self.digest}"
        return None

    def require(self, nbytes: int, digest: str | None) -> None:
        """Raise IntegrityError (the fatal one) when the bytes do not match."""
        problem = self.check(nbytes, digest)
        if problem is not None:
            raise IntegrityError(f"{MISMATCH} ({problem})")


def _usable(algorithm: str) -> bool:
    try:
        check_algorithm(algorithm)
    except ValueError:
        return False
    return True
