"""Client for the Glance v2 images API (chute-api or a real Glance).

Used by the CLI and by compute hosts. Downloads stream through urllib3 with large chunks: a
1 GiB image must not pay per-8-KiB Python overhead (http.client's default block size). Uploads
of regular files are read into one reused 1 MiB buffer and sent from it (_FileChunks).
"""

from __future__ import annotations

import builtins
import http.client
import json
import os
import socket
import stat
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, BinaryIO
from urllib.parse import quote, urlsplit

from chute.client import byteranges
from chute.client._http import Body, HttpApi
from chute.client.byteranges import Span
from chute.errors import RemoteError, TransferError

if TYPE_CHECKING:
    import requests

PATCH_MEDIA_TYPE = "application/openstack-images-v2.1-json-patch"
UPLOAD_CHUNK = 4 * 1024 * 1024
SEND_CHUNK = 1 << 20
EXTENTS_LIMIT = 4 << 20  # bytes of an extents answer we are willing to parse

Progress = Callable[[int], None]


def _q(part: str) -> str:
    return quote(str(part), safe="")


def _ended_early(sent: int, size: int) -> TransferError:
    # Stopping short would leave the server waiting for the promised bytes until its socket
    # timeout; raising drops the connection instead, so the server cleans up at once.
    return TransferError(f"the data ended after {sent} of {size} bytes; upload abandoned")


class _SizedBody:
    """An iterable body with a length: requests then sends Content-Length (not chunked) and
    urllib3 writes each 4 MiB chunk with one sendall. For pipes and other unseekable data."""

    def __init__(self, fileobj: BinaryIO, size: int, progress: Progress | None) -> None:
        self.fileobj, self.size, self.progress = fileobj, size, progress

    def __len__(self) -> int:
        return self.size

    def __iter__(self) -> Iterator[bytes]:
        remaining = self.size
        while remaining > 0:
            chunk = self.fileobj.read(min(UPLOAD_CHUNK, remaining))
            if not chunk:
                raise _ended_early(self.size - remaining, self.size)
            remaining -= len(chunk)
            if self.progress is not None:
                self.progress(len(chunk))
            yield chunk


class _FileChunks:
    """A regular file's bytes read into one reused SEND_CHUNK buffer and sent from it.

    Not sendfile(2), though it spares the client a copy: the server pays for it. Sent with
    sendfile, the page cache's 4 KiB pages travel as they are, and the server's HAProxy
    (which splices them on) and its recv() handle them one by one; copied, they travel in the
    large pages the kernel packs a socket's data into. Per GiB of CLI upload, 2 x 3 alternated
    runs on 2 cores: HAProxy 0.21-0.22 CPU-s against 0.25-0.28 with sendfile, the receiving
    thread 0.29-0.30 against 0.34-0.40, the whole server 3.09-3.12 against 3.25-3.49, for a
    client at 0.26-0.29 CPU-s against 0.19-0.22. (A 256 KiB buffer saved less.)
    """

    def __init__(self, fileobj: BinaryIO, size: int, progress: Progress | None) -> None:
        self.fileobj, self.size, self.progress = fileobj, size, progress

    def __call__(self, sock: socket.socket) -> None:
        buffer = memoryview(bytearray(min(SEND_CHUNK, self.size)))
        sent = 0
        while sent < self.size:
            with buffer[:min(len(buffer), self.size - sent)] as wanted:
                got = self.fileobj.readinto(wanted)  # type: ignore[attr-defined]
            if not got:
                raise _ended_early(sent, self.size)
            with buffer[:got] as chunk:
                sock.sendall(chunk)
            sent += got
            if self.progress is not None:
                self.progress(got)


def _is_regular_file(fileobj: BinaryIO) -> bool:
    try:
        return stat.S_ISREG(os.fstat(fileobj.fileno()).st_mode)
    except (OSError, ValueError):  # io.BytesIO and friends have no descriptor
        return False


class ImageClient:
    """Glance v2 images: metadata calls return the image document as a dict."""

    def __init__(self, endpoint: str, token: str | None = None, timeout: float = 60) -> None:
        self.api = HttpApi(endpoint, token, timeout, strip_suffixes=("/v2", "/v2.0"))

    @property
    def endpoint(self) -> str:
        return self.api.endpoint

    def close(self) -> None:
        self.api.close()

    # -- metadata -------------------------------------------------------------------------

    def get(self, image_id: str, token: str | None = None) -> dict[str, Any]:
        """The image document; with `token`, as that caller sees it (a user's token that a
        service forwards), not as this client's own token does."""
        headers = {"X-Auth-Token": token} if token else None
        return self.api.call_json_object("GET", f"/v2/images/{_q(image_id)}", headers=headers)

    def locations(self, image_id: str) -> list[dict[str, Any]]:
        """The service-only locations list (`[{url, metadata}]`), independent of
        show_multiple_locations; needs the service token when the server sets one."""
        return self.api.json_list("GET", f"/v2/images/{_q(image_id)}/locations")

    def create(self, **fields: Any) -> dict[str, Any]:
        return self.api.call_json_object("POST", "/v2/images", fields)

    def list(self, **filters: Any) -> Iterator[dict[str, Any]]:
        """Every image matching the filters, following `next` links page by page."""
        path: str | None = "/v2/images"
        params: dict[str, Any] | None = {k: v for k, v in filters.items() if v is not None}
        while path:
            page = self.api.json("GET", path, params=params)
            yield from page.get("images", [])
            path = self._follow(page.get("next"))
            params = None  # `next` already carries every query parameter

    def _follow(self, href: str | None) -> str | None:
        if not href:
            return None
        parts = urlsplit(href)
        if parts.scheme:
            return href
        return href if href.startswith("/") else "/" + href

    def update(self, image_id: str, patch_ops: builtins.list[dict[str, Any]]) -> dict[str, Any]:
        return self.api.json_object("PATCH", f"/v2/images/{_q(image_id)}", json=patch_ops,
                             headers={"Content-Type": PATCH_MEDIA_TYPE})

    def delete(self, image_id: str) -> None:
        self.api.request("DELETE", f"/v2/images/{_q(image_id)}").close()

    def add_tag(self, image_id: str, tag: str) -> None:
        self.api.request("PUT", f"/v2/images/{_q(image_id)}/tags/{_q(tag)}").close()

    def remove_tag(self, image_id: str, tag: str) -> None:
        self.api.request("DELETE", f"/v2/images/{_q(image_id)}/tags/{_q(tag)}").close()

    def deactivate(self, image_id: str) -> None:
        self.api.request("POST", f"/v2/images/{_q(image_id)}/actions/deactivate").close()

    def reactivate(self, image_id: str) -> None:
        self.api.request("POST", f"/v2/images/{_q(image_id)}/actions/reactivate").close()

    # -- data -----------------------------------------------------------------------------

    def extents(self, image_id: str) -> Any:
        """chute extension: `{"size": N, "extents": [{"offset", "length"}, ...]}`, where the
        image's data lies (all else is zeros). Untrusted: the caller validates it.

        A server without the extension (Glance) answers 404 for the path: RemoteError(404),
        as for an unknown image; no data (204) raises RemoteError(204), as open_download.
        The body is read up to EXTENTS_LIMIT: chute-api's answer stays far below it (at most
        10,000 extents, ~0.4 MB), and a server sending more is not one to trust with memory.
        """
        resp = self.api.request("GET", f"/v2/images/{_q(image_id)}/extents", stream=True)
        try:
            if resp.status_code != 200:
                raise RemoteError(resp.status_code, f"no extents for image {image_id}")
            body = bytearray()
            for chunk in resp.iter_content(64 << 10):  # read to the end: keeps the connection
                body += chunk
                if len(body) > EXTENTS_LIMIT:
                    raise RemoteError(resp.status_code, f"the extents answer is larger than "
                                                        f"{EXTENTS_LIMIT} bytes")
            try:
                return json.loads(body)
            except ValueError:
                raise RemoteError(resp.status_code, "the extents answer is not JSON") from None
        finally:
            resp.close()

    def upload(self, image_id: str, fileobj: BinaryIO, size: int,
               progress: Progress | None = None) -> None:
        """Send `size` bytes from `fileobj` (from its current position) as the image data;
        `progress(n)` as they go.

        A regular file goes out from one reused buffer on a connection of its own (_FileChunks);
        anything else (a pipe, a BytesIO) through requests in 4 MiB chunks (_SizedBody).
        """
        path = f"/v2/images/{_q(image_id)}/file"
        headers = {
            "Content-Type": "application/octet-stream",
            "x-openstack-image-size": str(size),
        }
        if _is_regular_file(fileobj):
            self.api.send_body("PUT", path, headers, size, _FileChunks(fileobj, size, progress))
            return
        body = _SizedBody(fileobj, size, progress)
        # No read timeout: the server answers only after hashing and inspecting everything.
        self.api.request("PUT", path, data=body, headers=headers,
                         timeout=(self.api.timeout, None)).close()

    def data(self, image_id: str, ranges: Sequence[Span] = ()) -> Body:
        """The image data, or only `ranges` (inclusive `(first, last)`, ascending; `last`
        None: to the end), body unread; caller closes.

        One range answers 206 with Content-Range, several a 206 `multipart/byteranges` body
        (chute.client.byteranges reads both). A 200 to a range request (Range ignored)
        raises RemoteError(200); an older chute-api refuses several ranges with
        RemoteError(400); no data (204) raises RemoteError(204), as open_download.
        """
        return Body(self._open(image_id, ranges), self.endpoint)

    @contextmanager
    def download_body(self, image_id: str) -> Iterator[http.client.HTTPResponse]:
        """The whole image data as an http.client response, to be read with readinto() into
        the caller's own buffers (see HttpApi.get_body); no data (204) raises
        RemoteError(204), as open_download."""
        with self.api.get_body(f"/v2/images/{_q(image_id)}/file",
                               {"Accept": "application/octet-stream"}) as resp:
            if resp.status == 204:
                raise RemoteError(204, f"image {image_id} has no data")
            yield resp

    def open_download(self, image_id: str, offset: int = 0,
                      last: int | None = None) -> requests.Response:
        """Start streaming the image data (bytes `offset`..`last` inclusive, with a Range
        request when not the whole image); caller closes.

        The response is 200 (or 206 for a range) with the body unread: read it with
        `resp.raw.readinto(buf)` or `resp.iter_content(4 << 20)`. An image without data
        (Glance answers 204) raises RemoteError(204, ...) so callers never mistake an
        empty body for an empty image; so does a 200 answer to a range (RemoteError(200)).
        """
        return self._open(image_id, [(offset, last)] if offset > 0 or last is not None else [])

    def _open(self, image_id: str, ranges: Sequence[Span]) -> requests.Response:
        # identity: the body is read with readinto, as the bytes the image is, never decoded
        headers = {"Accept": "application/octet-stream", "Accept-Encoding": "identity"}
        if ranges:
            headers["Range"] = byteranges.header(ranges)
        resp = self.api.request("GET", f"/v2/images/{_q(image_id)}/file", headers=headers,
                                stream=True)
        if resp.status_code == 204:
            resp.close()
            raise RemoteError(204, f"image {image_id} has no data")
        if ranges and resp.status_code != 206:
            resp.close()
            raise RemoteError(resp.status_code,
                              f"server ignored the Range request for image {image_id}")
        return resp
