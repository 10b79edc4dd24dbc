"""Helpers for the image service tests: create/upload over HTTP, inspect the store on disk."""

from __future__ import annotations

import os
import socket
import subprocess
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


def upload(api: Any, image_id: str, data: Any, headers: dict | None = None) -> requests.Response:
    return requests.put(f"{api.url}/v2/images/{image_id}/file", data=data,
                        headers={**OCTET, **JSON, **(headers or {})}, timeout=60)


def show(api: Any, image_id: str) -> dict:
    resp = requests.get(f"{api.url}/v2/images/{image_id}", headers=JSON, timeout=10)
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
    assert "chute_blake3_blocks" not in image
    assert image["locations"] == []
    assert "direct_url" not in image


def raw_socket_upload(api: Any, image_id: str, declared: int, send: bytes) -> socket.socket:
    """Start a Content-Length upload and send only `send`; the caller closes or keeps it."""
    sock = socket.create_connection(("127.0.0.1", api.port), timeout=10)
    head = (f"PUT /v2/images/{image_id}/file HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Content-Type: application/octet-stream\r\nContent-Length: {declared}\r\n\r\n")
    sock.sendall(head.encode() + send)
    return sock


def qemu_img(*args: str) -> None:
    subprocess.run(["qemu-img", *args], check=True, capture_output=True)


def make_qcow2(path: Path, size: str = "16M", *options: str) -> Path:
    qemu_img("create", "-q", "-f", "qcow2", *options, str(path), size)
    return path


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
