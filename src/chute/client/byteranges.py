"""Byte ranges of an HTTP answer as a client reads them: the `Range` request header, the
`Content-Range` of a single-range answer, and a `multipart/byteranges` body (RFC 9110 14).

Strict on the framing (chute-api's exact layout): any surprise is RangesUnusable, on which the
caller downloads the whole body instead. A body that ends early is RemoteUnavailable, as any
broken connection (the caller may resume).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from chute.client._http import Body
from chute.errors import RemoteUnavailable

PART_HEAD_READ = 512  # bytes read at a time while looking for a part's headers
PART_HEAD_LIMIT = 4096  # a part header (or the closing delimiter) longer than this is refused

Span = tuple[int, int | None]  # inclusive (first, last); last None: to the end


class RangesUnusable(Exception):
    """The server answered a range request with something else: fetch the whole body."""


def header(ranges: Sequence[Span]) -> str:
    """The `Range` header value asking for `ranges`."""
    return "bytes=" + ",".join(f"{first}-{'' if last is None else last}"
                               for first, last in ranges)


def check_content_range(got: str, server: str, wanted: tuple[int, int], size: int) -> None:
    """RangesUnusable unless `got` says exactly `wanted` of a `size`-byte whole."""
    expected = f"bytes {wanted[0]}-{wanted[1]}/{size}"
    if re.sub(r"\s+", " ", got).strip() != expected:
        raise RangesUnusable(f"{server} answered {expected!r} with Content-Range {got!r}")


class Parts:
    """Reads a `multipart/byteranges` body: each part's Content-Range, then its bytes."""

    def __init__(self, body: Body) -> None:
        server = body.endpoint
        found = re.fullmatch(r'\s*multipart/byteranges\s*;\s*boundary="?([^";\s]+)"?\s*',
                             body.header("Content-Type"), re.IGNORECASE)
        if found is None:
            raise RangesUnusable(f"{server} answered several ranges with Content-Type "
                                 f"{body.header('Content-Type') or None!r}")
        self.delimiter = b"--" + found.group(1).encode("latin-1")
        self.body, self.server = body, server
        self.pending = b""  # read past a part's headers: the start of its data

    def read(self, size: int) -> bytes:
        if self.pending:
            chunk, self.pending = self.pending[:size], self.pending[size:]
            return chunk
        return self.body.read(size)

    def readinto(self, buffer: memoryview) -> int:
        """A part's data straight into `buffer`: what was read past its headers first."""
        if self.pending:
            step = min(len(buffer), len(self.pending))
            buffer[:step] = self.pending[:step]
            self.pending = self.pending[step:]
            return step
        return self.body.readinto(buffer, ranges=True)

    def next_part(self) -> str:
        """Read a delimiter and part headers; -> the part's Content-Range."""
        head = b""
        while (end := head.find(b"\r\n\r\n", 2)) < 0:
            if len(head) > PART_HEAD_LIMIT:
                raise RangesUnusable(f"{self.server} sent a part header over "
                                     f"{PART_HEAD_LIMIT} bytes")
            more = self.read(PART_HEAD_READ)
            if not more:
                raise RemoteUnavailable(f"{self.server} ended a multipart body in a header")
            head += more
        self.pending = head[end + 4:] + self.pending
        lines = head[:end].decode("latin-1").removeprefix("\r\n").split("\r\n")
        if lines[0] != self.delimiter.decode("latin-1"):
            raise RangesUnusable(f"{self.server} sent {lines[0][:80]!r} where a part begins")
        fields = dict(line.split(":", 1) for line in lines[1:] if ":" in line)
        return next((value for name, value in fields.items()
                     if name.strip().lower() == "content-range"), "")

    def finish(self) -> None:
        """The closing delimiter and nothing else, read to the end (keeps the connection)."""
        rest = self.read(PART_HEAD_LIMIT)
        while more := self.read(PART_HEAD_LIMIT):
            rest += more
            if len(rest) > PART_HEAD_LIMIT:
                break
        if rest.strip() != self.delimiter + b"--":
            raise RangesUnusable(f"{self.server} sent {rest[:80]!r} after the last part")
