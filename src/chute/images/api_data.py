"""`PUT`/`GET /v2/images/{id}/file`: upload and download of image data."""

from __future__ import annotations

import contextlib
import re
import socket
import uuid
from collections.abc import Iterator
from typing import BinaryIO

import falcon

from chute.auth.middleware import context_of
from chute.httpapi import no_body
from chute.images.body import open_body
from chute.images.data import ImageData
from chute.images.stores_service import upload_store


def _declared_size(req: falcon.Request) -> int | None:
    raw = req.get_header("x-openstack-image-size")
    if raw is not None:
        try:
            value = int(raw)
        except ValueError:
            raise falcon.HTTPBadRequest(
                description=f"x-openstack-image-size must be an integer, not {raw!r}") from None
        if value < 0:
            raise falcon.HTTPBadRequest(description="x-openstack-image-size must be positive")
        return value or None
    chunked = "chunked" in (req.get_header("Transfer-Encoding") or "").lower()
    return None if chunked else req.content_length


# A chute-compute asks for up to ~150 data extents of a sparse image in one request (the
# header stays under gunicorn's 8190-byte field limit); more ranges than this is no client of
# ours, and each costs a part header, so refuse rather than build a huge multipart plan.
MAX_RANGES = 1024
# The send buffer of a download's socket to the front end, as asked of setsockopt: Linux doubles
# it (a MiB in flight) and caps it at twice net.core.wmem_max (416 KiB with the default
# 212992). gunicorn's sendfile(2) puts page-cache pages into this unix socket by reference, so
# a wider buffer holds references, not copies. The default (208 KiB) woke the worker and
# HAProxy every ~200 KiB: 22k context switches per GiB across worker, HAProxy and reader. With
# a MiB, 1 GiB raw GETs read by the bench's reader (2 shared cores, 15 alternated pairs each,
# medians): warm, twice, worker + HAProxy -0.09 and -0.11 CPU-s per GiB (0.34 -> 0.23), with
# the reader -0.17, 1.55x and 1.76x the MiB/s (14 and 13 of 15 pairs faster); cold (11 pairs)
# -0.14 CPU-s with the reader, 1.05x. Against the default too: 416 KiB warm 1.28x and 1.43x,
# cold 1.21x; larger gains less (2 MiB: warm 1.49x, cold 0.83x; 4 MiB: warm 1.15x).
DOWNLOAD_SEND_BUFFER = 512 * 1024
_SPEC = re.compile(r"\s*(\d*)\s*-\s*(\d*)\s*")
PART_READ = 1 << 20  # bytes read from the store per yield of a multipart body
CRLF = "\r\n"


def _ranges(header: str, size: int) -> list[tuple[int, int]]:
    """Parse `bytes=a-b[,c-d...]` (each `a-b` / `a-` / `-n`) into inclusive (start, end).

    Several ranges must be ascending and disjoint (400 otherwise): the client is a compute
    host asking for the data extents it was given, in order, and a part for each is all it
    reads. 416 when any range is unsatisfiable.
    """
    unit, _, specs = header.partition("=")
    if unit.strip() != "bytes" or not specs.strip():
        raise _unsatisfiable(size)
    pieces = specs.split(",")
    if len(pieces) > MAX_RANGES:
        raise falcon.HTTPBadRequest(description=f"More than {MAX_RANGES} ranges.")
    ranges = [_one_range(piece, size) for piece in pieces]
    for (_, end), (start, _) in zip(ranges, ranges[1:], strict=False):
        if start <= end:
            raise falcon.HTTPBadRequest(
                description="Multiple ranges must be ascending and must not overlap.")
    return ranges


def _one_range(spec: str, size: int) -> tuple[int, int]:
    match = _SPEC.fullmatch(spec)
    if match is None or match.group(1) == match.group(2) == "":
        raise _unsatisfiable(size)
    first, last = match.group(1), match.group(2)
    if first == "":
        start, end = max(size - int(last), 0), size - 1
    else:
        start = int(first)
        end = min(int(last), size - 1) if last else size - 1
    if start >= size or end < start:
        raise _unsatisfiable(size)
    return start, end


def _multipart(fileobj: BinaryIO, ranges: list[tuple[int, int]], size: int,
               boundary: str) -> tuple[int, Iterator[bytes]]:
    """A `multipart/byteranges` body (RFC 9110 14.6) of `ranges`: (its length, its chunks).

    Why one request for many ranges: a range GET costs this server ~3.3 ms of CPU before the
    first byte (image lookup, 4 SQL queries, routing; measured 0.44 CPU-s for 128 4 KiB
    ranges) and the compute host ~2 ms; the bench's sparse image has 128 data extents, so
    per-request overhead was ~0.65 CPU-s of the sparse HTTP boot. The parts are read and
    sent by Python (no sendfile for a body in pieces), which costs less than that: see the
    commit that added it.
    """
    heads = [(f"{'' if n == 0 else CRLF}--{boundary}\r\n"
              f"Content-Type: application/octet-stream\r\n"
              f"Content-Range: bytes {start}-{end}/{size}\r\n\r\n").encode("ascii")
             for n, (start, end) in enumerate(ranges)]
    tail = f"\r\n--{boundary}--\r\n".encode("ascii")
    length = sum(map(len, heads)) + sum(end - start + 1 for start, end in ranges) + len(tail)

    def chunks() -> Iterator[bytes]:
        try:
            for head, (start, end) in zip(heads, ranges, strict=True):
                yield head
                fileobj.seek(start)
                left = end - start + 1
                while left:
                    chunk = fileobj.read(min(left, PART_READ))
                    if not chunk:
                        raise OSError(f"the stored image ended {left} bytes before {end + 1}")
                    left -= len(chunk)
                    yield chunk
            yield tail
        finally:
            fileobj.close()

    return length, chunks()


def _legacy_range(header: str | None) -> str | None:
    """Glance still honours a *request* Content-Range (`bytes a-b/total`) as a Range."""
    if not header:
        return None
    match = re.fullmatch(r"\s*bytes\s+(\d+)-(\d+)/(?:\d+|\*)\s*", header)
    return f"bytes={match.group(1)}-{match.group(2)}" if match else "bytes=invalid"


def _unsatisfiable(size: int) -> falcon.HTTPError:
    return falcon.HTTPRangeNotSatisfiable(size, description="Requested range not satisfiable")


class ReceivingResource:
    """A `PUT` of image data: its checks, its stall bound, then `receive`."""

    def __init__(self, data: ImageData, socket_timeout: float) -> None:
        self.data = data
        self.socket_timeout = socket_timeout

    def on_put(self, req: falcon.Request, resp: falcon.Response, image_id: str) -> None:
        media_type = (req.content_type or "").split(";")[0].strip().lower()
        if media_type != "application/octet-stream":
            raise falcon.HTTPUnsupportedMediaType(
                description=f"Unsupported Content-Type {req.content_type}; use "
                            "application/octet-stream")
        self.data.service.authorized(image_id, context_of(req), "upload_image")
        self._bound_stalls(req)
        try:
            self.receive(req, image_id, _declared_size(req))
        except TimeoutError:
            # The image is queued again already. Stop reading this socket: gunicorn closes it
            # from the worker's event loop, waiting up to 2 s for the peer's FIN, which a
            # stalled client never sends - every other request of the worker would wait too.
            sock = req.env.get("gunicorn.socket")
            if isinstance(sock, socket.socket):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RD)
            raise falcon.HTTPError(
                falcon.HTTP_408, description=f"The client sent no data for "
                f"{self.socket_timeout} s (client_socket_timeout); upload abandoned.") from None
        resp.status = falcon.HTTP_204

    def receive(self, req: falcon.Request, image_id: str, declared: int | None) -> None:
        """Where the body goes: the store (`/file`); `/stage` sends it to the staging area."""
        store_id = upload_store(self.data.store, req.get_header("X-Image-Meta-Store"))
        self.data.upload(image_id, open_body(req.env), declared, store_id)

    def _bound_stalls(self, req: falcon.Request) -> None:
        """A client that stalls mid-body (not sending, or not reading: sendfile blocks once
        the socket buffers fill) must not hold this thread, nor the image, forever."""
        sock = req.env.get("gunicorn.socket")
        if isinstance(sock, socket.socket):
            sock.settimeout(self.socket_timeout)



class FileResource(ReceivingResource):
    def on_get(self, req: falcon.Request, resp: falcon.Response, image_id: str) -> None:
        no_body(req)
        self.data.service.authorized(image_id, context_of(req), "download_image")
        self._bound_stalls(req)
        download = self.data.open(image_id)
        if download is None:
            resp.status = falcon.HTTP_204
            return
        fileobj, size = download.opened.fileobj, download.opened.size
        ranges = [(0, size - 1)]
        header = req.get_header("Range") or _legacy_range(req.get_header("Content-Range"))
        if header:
            try:
                ranges = _ranges(header, size)
            except falcon.HTTPError:
                fileobj.close()
                raise
            resp.status = falcon.HTTP_206
        if download.checksum:
            resp.set_header("Content-MD5", download.checksum)
        if len(ranges) > 1:
            boundary = uuid.uuid4().hex
            resp.content_type = f"multipart/byteranges; boundary={boundary}"
            resp.content_length, resp.stream = _multipart(fileobj, ranges, size, boundary)
            return
        start, end = ranges[0]
        if header:
            resp.set_header("Content-Range", f"bytes {start}-{end}/{size}")
        resp.content_type = "application/octet-stream"
        fileobj.seek(start)
        _widen_send_buffer(req)
        # With a Content-Length gunicorn hands wsgi.file_wrapper bodies to sendfile(2),
        # starting at the file's current offset.
        resp.content_length = end - start + 1 if size else 0
        resp.stream = fileobj


def _widen_send_buffer(req: falcon.Request) -> None:
    """Let the body's socket hold DOWNLOAD_SEND_BUFFER: fewer, larger hand-offs to HAProxy."""
    sock = req.env.get("gunicorn.socket")
    if isinstance(sock, socket.socket):
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, DOWNLOAD_SEND_BUFFER)
