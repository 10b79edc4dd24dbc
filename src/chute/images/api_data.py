"""`PUT`/`GET /v2/images/{id}/file`: upload and download of image data."""

from __future__ import annotations

import contextlib
import re
import socket

import falcon

from chute.httpapi import no_body
from chute.images.body import open_body
from chute.images.data import ImageData


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


def _range(header: str, size: int) -> tuple[int, int]:
    """Parse one `bytes=a-b` / `a-` / `-n` range; 400 for several, 416 when unsatisfiable."""
    if "," in header:
        raise falcon.HTTPBadRequest(description="Multiple ranges are not supported.")
    match = re.fullmatch(r"\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*", header)
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


def _legacy_range(header: str | None) -> str | None:
    """Glance still honours a *request* Content-Range (`bytes a-b/total`) as a Range."""
    if not header:
        return None
    match = re.fullmatch(r"\s*bytes\s+(\d+)-(\d+)/(?:\d+|\*)\s*", header)
    return f"bytes={match.group(1)}-{match.group(2)}" if match else "bytes=invalid"


def _unsatisfiable(size: int) -> falcon.HTTPError:
    return falcon.HTTPRangeNotSatisfiable(size, description="Requested range not satisfiable")


class FileResource:
    def __init__(self, data: ImageData, socket_timeout: float) -> None:
        self.data = data
        self.socket_timeout = socket_timeout

    def on_put(self, req: falcon.Request, resp: falcon.Response, image_id: str) -> None:
        media_type = (req.content_type or "").split(";")[0].strip().lower()
        if media_type != "application/octet-stream":
            raise falcon.HTTPUnsupportedMediaType(
                description=f"Unsupported Content-Type {req.content_type}; use "
                            "application/octet-stream")
        self._bound_stalls(req)
        try:
            self.data.upload(image_id, open_body(req.env), _declared_size(req))
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

    def _bound_stalls(self, req: falcon.Request) -> None:
        """A client that stalls mid-body (not sending, or not reading: sendfile blocks once
        the socket buffers fill) must not hold this thread, nor the image, forever."""
        sock = req.env.get("gunicorn.socket")
        if isinstance(sock, socket.socket):
            sock.settimeout(self.socket_timeout)

    def on_get(self, req: falcon.Request, resp: falcon.Response, image_id: str) -> None:
        no_body(req)
        self._bound_stalls(req)
        download = self.data.open(image_id)
        if download is None:
            resp.status = falcon.HTTP_204
            return
        fileobj, size = download.opened.fileobj, download.opened.size
        start, end = 0, size - 1
        header = req.get_header("Range") or _legacy_range(req.get_header("Content-Range"))
        if header:
            try:
                start, end = _range(header, size)
            except falcon.HTTPError:
                fileobj.close()
                raise
            resp.status = falcon.HTTP_206
            resp.set_header("Content-Range", f"bytes {start}-{end}/{size}")
        if download.checksum:
            resp.set_header("Content-MD5", download.checksum)
        resp.content_type = "application/octet-stream"
        fileobj.seek(start)
        # With a Content-Length gunicorn hands wsgi.file_wrapper bodies to sendfile(2),
        # starting at the file's current offset.
        resp.content_length = end - start + 1 if size else 0
        resp.stream = fileobj
