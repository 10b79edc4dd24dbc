"""The digests the image service records and the name compute gives a cached base image."""

from __future__ import annotations

import hashlib
from pathlib import Path

_CHUNK = 4 << 20


def digests(path: Path | str) -> dict[str, str]:
    """md5 and sha512 of a file, as the image service records them (checksum, os_hash_value)."""
    md5, sha512 = hashlib.md5(), hashlib.sha512()
    with open(path, "rb") as data:
        while chunk := data.read(_CHUNK):
            md5.update(chunk)
            sha512.update(chunk)
    return {"checksum": md5.hexdigest(), "os_hash_value": sha512.hexdigest()}


def sha512_file(path: Path | str) -> str:
    return digests(path)["os_hash_value"]


def base_name(image_id: str) -> str:
    """The file name of an image in compute's `_base` cache."""
    return hashlib.sha1(image_id.encode()).hexdigest()
