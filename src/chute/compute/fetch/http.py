"""The HTTP path: `GET /v2/images/{id}/file` streamed into the `.part` file, hashed on the way.

Nova retried only the call that returned the body iterator; a connection reset mid-stream
failed the boot (nova-image-fetch.md 2.5). Here a drop after N bytes resumes with
`Range: bytes=N-` on the next server, the digest continuing from the bytes already written.
Attempts: `1 + num_retries` failures in a row, over `[glance] api_servers` in order; a
failure after progress does not count against the budget (progress is bounded by the size,
so this still ends). A digest mismatch is IntegrityError: the image service served these
bytes, asking again would return the same ones.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from typing import Any

import requests

from chute.client.images import ImageClient
from chute.compute.fetch.verify import Expected
from chute.config import Config
from chute.errors import RemoteError, RemoteUnavailable, TransferError
from chute.transfer.hashing import MultiHasher
from chute.transfer.zeros import all_zero

LOG = logging.getLogger("chute.compute.fetch")

CHUNK = 4 << 20
RETRY_DELAY = 1.0  # seconds between attempts, as Nova


@dataclass(frozen=True)
class HttpResult:
    nbytes: int
    seconds: float
    server: str


def _retryable(exc: Exception) -> bool:
    if isinstance(exc, (RemoteUnavailable, requests.RequestException)):
        return True
    return isinstance(exc, RemoteError) and exc.status in (502, 503, 504)


class _Download:
    """One download's state across attempts: the fd, bytes written, the running digest."""

    def __init__(self, fd: int, expected: Expected) -> None:
        self.fd, self.expected = fd, expected
        self.hasher = MultiHasher([expected.algorithm])
        self.written = 0

    def attempt(self, client: ImageClient, image_id: str) -> None:
        try:
            resp = client.open_download(image_id, offset=self.written)
        except RemoteError as exc:
            if not (self.written and exc.status == 200):
                raise
            # This server ignores Range (a proxy, an old Glance): start over from byte 0.
            self.restart()
            resp = client.open_download(image_id)
        try:
            for chunk in resp.iter_content(CHUNK):
                self._write(chunk)
                if self.written > self.expected.size:
                    break  # longer than the image: verification below says so
        finally:
            resp.close()

    def restart(self) -> None:
        self.hasher.close()
        self.hasher = MultiHasher([self.expected.algorithm])
        self.written = 0
        os.ftruncate(self.fd, 0)

    def _write(self, chunk: bytes) -> None:
        view, done = memoryview(chunk), 0
        if all_zero(chunk):  # leave a hole; fetch_http ftruncates to the size (transfer.zeros)
            done = len(chunk)
        try:
            while done < len(chunk):
                done += os.pwrite(self.fd, view[done:], self.written + done)
        except OSError as exc:  # a full disk is not a network problem: never retried
            raise TransferError(f"cannot write the downloaded image: {exc.strerror}") from None
        self.written += len(chunk)
        self.hasher.update(chunk)

    def complete(self) -> bool:
        return self.written >= self.expected.size


def fetch_http(conf: Config, image_id: str, dst_path: str, expected: Expected) -> HttpResult:
    """Download into `dst_path` (truncated), verify size and digest, fsync; raise on failure."""
    servers: list[str] = conf.get("glance", "api_servers")
    if not servers:
        raise TransferError("no [glance] api_servers to download from")
    token = conf.get("glance", "service_token") or None
    attempts = 1 + conf.get("glance", "num_retries")
    started = time.monotonic()
    fd = os.open(dst_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    download = _Download(fd, expected)
    clients: dict[str, ImageClient] = {}
    try:
        server = _run(download, image_id, servers, attempts, token, clients)
        expected.require(download.written, download.hasher.hexdigests()[expected.algorithm])
        os.ftruncate(fd, download.written)  # trailing all-zero chunks were left as holes
        os.fsync(fd)
    finally:
        download.hasher.close()
        os.close(fd)
        for client in clients.values():
            client.close()
    return HttpResult(download.written, time.monotonic() - started, server)


def _run(download: _Download, image_id: str, servers: list[str], attempts: int,
         token: str | None, clients: dict[str, ImageClient]) -> str:
    failures, turn = 0, 0
    while True:
        server = servers[turn % len(servers)]
        client = clients.get(server) or clients.setdefault(server, ImageClient(server, token))
        before = download.written
        try:
            download.attempt(client, image_id)
            if download.complete():
                return server
            error: Exception = RemoteUnavailable(
                f"{server} ended the body after {download.written} of "
                f"{download.expected.size} bytes")
        except Exception as exc:  # noqa: BLE001 - classified right below
            if not _retryable(exc):
                raise
            error = exc
        failures = 0 if download.written > before else failures + 1
        if failures >= attempts:
            raise TransferError(f"downloading image {image_id} failed after {attempts} "
                                f"attempt(s): {_text(error)}")
        LOG.warning("Error downloading image %s from %s after %d bytes (%s), retrying",
                    image_id, server, download.written, _text(error))
        turn += 1
        time.sleep(RETRY_DELAY)


def _text(exc: Any) -> str:
    return getattr(exc, "message", None) or str(exc) or type(exc).__name__
