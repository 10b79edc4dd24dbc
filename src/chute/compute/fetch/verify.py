"""What a fetched image must be: its size and one digest, chosen from the image document.

`auto` prefers the `chute_blake3_blocks` property the image service records at upload (the
`blake3-blocks` digest, defined in chute.transfer.hashing): it hashes ~5 GB/s on these 2 cores
and skips holes, where SHA-512 runs ~1 GB/s on one core and must hash every zero of a sparse
image, so verifying a direct copy costs less than the copy. A Glance that is not chute, or an
image uploaded before the property existed, has none: then the multihash
(`os_hash_algo`/`os_hash_value`), then the legacy MD5 `checksum`, as glanceclient does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from chute.errors import IntegrityError, TransferError
from chute.transfer.hashing import BLOCKS, check_algorithm

MISMATCH = "image data does not match its checksum"
BLOCKS_FIELD = "chute_blake3_blocks"  # the image property holding the blake3-blocks digest


@dataclass(frozen=True)
class Expected:
    size: int
    algorithm: str  # a chute.transfer.hashing algorithm name
    digest: str  # lower-case hex
    field: str  # the image attribute the digest came from, for messages

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


def expected(image: dict[str, Any], mode: str = "auto") -> Expected:
    """The size and digest to verify against; refuse an image that offers none."""
    image_id, size = image.get("id"), image.get("size")
    if not isinstance(size, int):
        raise TransferError(f"image {image_id} has no size: refusing unverifiable data")
    blocks = image.get(BLOCKS_FIELD)
    if mode == "auto" and blocks:
        return Expected(size, BLOCKS, str(blocks).lower(), BLOCKS_FIELD)
    algo, value = image.get("os_hash_algo"), image.get("os_hash_value")
    if algo and value:
        try:
            check_algorithm(str(algo))
        except ValueError as exc:
            raise TransferError(f"image {image_id}: {exc}") from None
        return Expected(size, str(algo), str(value).lower(), "os_hash_value")
    if mode == "auto" and image.get("checksum"):
        return Expected(size, "md5", str(image["checksum"]).lower(), "checksum")
    raise TransferError(f"image {image_id} has no usable checksum: refusing unverifiable data")
