"""The image service over HTTP as the tests drive it: create, upload, show; the store on disk.

`upload` is the one PUT of image data (bytes, an iterable, or a file path streamed from disk);
`upload_image` is the one "an active image with these bytes" (create + upload + show).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import requests

JSON = {"Accept": "application/json"}
OCTET = {"Content-Type": "application/octet-stream"}


def create(api: Any, **fields: Any) -> dict:
    body = {"disk_format": "raw", "container_format": "bare", **fields}
    resp = requests.post(api.url + "/v2/images", json=body, headers=JSON, timeout=10)
    assert resp.status_code == 201, resp.text
    return resp.json()


def upload(api: Any, image_id: str, data: bytes | Iterable[bytes] | Path,
           headers: dict | None = None, timeout: float = 60) -> requests.Response:
    """PUT the image's data; a Path is streamed from its file."""
    url = f"{api.url}/v2/images/{image_id}/file"
    sent = {**OCTET, **JSON, **(headers or {})}
    if isinstance(data, Path):
        with open(data, "rb") as body:
            return requests.put(url, data=body, headers=sent, timeout=timeout)
    return requests.put(url, data=data, headers=sent, timeout=timeout)


def upload_image(api: Any, data: bytes | Path, disk_format: str = "raw", timeout: float = 120,
                 **fields: Any) -> dict:
    """Create an image, upload `data`; return the image document, asserted active."""
    image = create(api, disk_format=disk_format, **fields)
    resp = upload(api, image["id"], data, timeout=timeout)
    assert resp.status_code == 204, resp.text
    image = show(api, image["id"])
    assert image["status"] == "active", image
    return image


def show(api: Any, image_id: str, headers: dict | None = None) -> dict:
    resp = requests.get(f"{api.url}/v2/images/{image_id}", headers=headers or JSON, timeout=10)
    assert resp.status_code == 200, resp.text
    return resp.json()


def store_files(api: Any) -> list[str]:
    """Every entry in the datadir, hidden temporary files included."""
    return sorted(os.listdir(api.datadir)) if os.path.isdir(api.datadir) else []


def assert_nothing_stored(api: Any, image_id: str) -> None:
    """The failed upload left no file, no partial file, and the image is queued and clean."""
    leftovers = [name for name in store_files(api) if image_id in name or name.endswith(".partial")]
    assert leftovers == [], leftovers
    image = show(api, image_id)
    assert image["status"] == "queued"
    for key in ("size", "checksum", "os_hash_value", "os_hash_algo", "virtual_size"):
        assert image[key] is None, (key, image[key])
    assert "os_glance_blake3_blocks" not in image
    assert image["locations"] == []
    assert "direct_url" not in image


def open_upload(api: Any, image_id: str, declared: int, first: bytes = b"",
                timeout: float = 30) -> socket.socket:
    """A raw Content-Length PUT: its head and `first` bytes of body sent; the caller sends
    the rest (or not), then closes or keeps the socket."""
    sock = socket.create_connection(("127.0.0.1", api.port), timeout=timeout)
    head = (f"PUT /v2/images/{image_id}/file HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Content-Type: application/octet-stream\r\nContent-Length: {declared}\r\n\r\n")
    sock.sendall(head.encode() + first)
    return sock


def rewrite_sparse(path: Path, data: bytes, block: int = 32 * 1024) -> None:
    """Replace `path` by the same bytes with every all-zero `block` left as a hole, whatever
    the writer that stored it did (the store keeps only whole zero chunks as holes)."""
    tmp = path.with_name(path.name + ".sparse")
    with open(tmp, "wb") as handle:
        for offset in range(0, len(data), block):
            piece = data[offset:offset + block]
            if piece.count(0) != len(piece):
                handle.seek(offset)
                handle.write(piece)
        handle.truncate(len(data))
    os.replace(tmp, path)
