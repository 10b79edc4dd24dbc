"""Download an image to a file, verifying size and hash while writing.

The data goes to a temporary name beside the target, is fsynced, and is renamed into place only
after size and hash match, so a failed or interrupted download never leaves a file that looks
whole under the requested name.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import urllib3

from chute.client.images import ImageClient
from chute.errors import IntegrityError, RemoteError, RemoteUnavailable
from chute.transfer.hashing import BLOCKS, MultiHasher, new_hash

CHUNK = 4 * 1024 * 1024


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
        with os.fdopen(fd, "wb") as out:
            nbytes = _stream(client, image["id"], out, expected, progress)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        _unlink(tmp)
        raise
    return Downloaded(path, nbytes, expected.algorithm)


def _stream(client: ImageClient, image_id: str, out: Any, expected: Expected,
            progress: Callable[[int], None] | None) -> int:
    hasher = MultiHasher([expected.algorithm] if expected.algorithm else [])
    nbytes = 0
    with hasher, client.open_download(image_id) as resp:
        while True:
            # raw.read (requests asks urllib3 not to decode) hands over http.client's bytes
            # as they are; raw.readinto would copy each chunk once more. Being immutable,
            # the chunk can be hashed in the background while it is written.
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
