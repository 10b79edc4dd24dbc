"""The body of an upload request, read chunk by chunk into the caller's buffers.

`open_body(env)` returns an object with `read_chunk(buffer)`. For a Content-Length body under
gunicorn it reads the client socket directly with recv_into() into the caller's (reused)
buffer: gunicorn's own Body.read() passes every byte through two or three BytesIO buffers and
slices, ~1.2 CPU-seconds per GiB on this machine, a sixth of what a whole upload costs. Every
chunked body under gunicorn is read from its ChunkedReader (ChunkedBody says why); every other
body (another WSGI server, a test's BytesIO) goes through the plain WSGI `read()`, whose bytes
are used as they are.

The fast path keeps gunicorn's bookkeeping exact: it first takes the body bytes gunicorn had
already read ahead with the headers (handing back any that belong to a pipelined next request),
and lowers the reader's remaining length as it reads, so gunicorn drains or closes the
connection afterwards exactly as if its own reader had been used.

Not MSG_WAITALL with a kernel receive timeout (SO_RCVTIMEO) to fill a chunk per call: 5.5k
fewer syscalls per GiB, but the receiving thread's CPU did not move beyond the noise (0.41-0.53
vs 0.34-0.57 CPU-s per GiB, 2026-12-07), and the timeout would bound a whole call, not a
silence, stretching the stall limit up to twice. Fewer, larger wake-ups came instead from the
front end's socket buffer (chute.front_end.SERVER_SNDBUF).
"""

from __future__ import annotations

import socket
from typing import Any, BinaryIO, Protocol

from chute.errors import Invalid


class Body(Protocol):
    def read_chunk(self, buffer: memoryview) -> bytes | memoryview:
        """Up to len(buffer) next bytes of the body (b"" at its end); either a view of
        `buffer`, filled, or another bytes object. TimeoutError when the client stalls."""


def _stopped(exc: BaseException) -> Invalid:
    return Invalid(f"The client stopped sending the image data: {exc or type(exc).__name__}")


class _Readable(Protocol):
    def read(self, size: int, /) -> bytes: ...


class StreamBody:
    """Any WSGI input: `read(n)`, whose bytes are handed on as they are (no copy)."""

    def __init__(self, stream: BinaryIO | _Readable) -> None:
        self._stream = stream

    def read_chunk(self, buffer: memoryview) -> bytes | memoryview:
        try:
            return self._stream.read(len(buffer))
        except TimeoutError:
            raise  # a stalled client: the handler answers 408
        except (OSError, ValueError) as exc:  # gunicorn's NoMoreData is an IOError
            raise _stopped(exc) from None
        except Exception as exc:
            if _malformed(exc):  # a bad chunk size line, a chunk without its CRLF, ...
                raise Invalid(f"Malformed request body: {exc}") from None
            raise


def _malformed(exc: Exception) -> bool:
    """Whether gunicorn refused the body's framing (a ParseException: InvalidChunkSize,
    ChunkMissingTerminator, InvalidChunkExtension). gunicorn has marked the body failed, so it
    closes the connection after the 400 instead of parsing the rest as the next request."""
    try:
        from gunicorn.http.errors import ParseException
    except ImportError:
        return False
    return isinstance(exc, ParseException)


class ChunkedBody(StreamBody):
    """A chunked body read from gunicorn's ChunkedReader, which returns up to the bytes asked.

    gunicorn's Body.read(n) asks its reader for at least 1 KiB and waits until it has it (or
    the body ends), so a read limited to the first byte past a declared size would wait for,
    and read, up to 1 KiB more. Going to the reader also skips Body's BytesIO copy.
    """

    def __init__(self, reader: _Readable, owner: _FailableBody) -> None:
        super().__init__(reader)
        self._owner = owner

    def read_chunk(self, buffer: memoryview) -> bytes | memoryview:
        try:
            return super().read_chunk(buffer)
        except BaseException:
            self._owner.failed = True  # as Body does: the connection is not reused
            raise


class _LengthReader(Protocol):
    """gunicorn's LengthReader, as far as SocketBody uses it."""

    length: int  # body bytes not yet read from the socket


class _FailableBody(Protocol):
    """gunicorn's Body, as far as SocketBody uses it."""

    failed: bool


class SocketBody:
    """A Content-Length body read straight from gunicorn's client socket (see the module doc).

    `reader` is gunicorn's LengthReader; its `length` always says what is left to read.
    """

    def __init__(self, sock: socket.socket, prefix: bytes, reader: _LengthReader,
                 owner: _FailableBody) -> None:
        self._sock = sock
        self._prefix = memoryview(prefix)
        self._reader = reader
        self._owner = owner  # gunicorn's Body: marked failed when the body breaks off

    def read_chunk(self, buffer: memoryview) -> bytes | memoryview:
        wanted = min(len(buffer), len(self._prefix) + self._reader.length)
        filled = 0
        if self._prefix:
            filled = min(wanted, len(self._prefix))
            buffer[:filled] = self._prefix[:filled]
            self._prefix = self._prefix[filled:]
        try:
            while filled < wanted:
                got = self._sock.recv_into(buffer[filled:wanted])
                if not got:
                    raise _stopped(EOFError("connection closed"))
                self._reader.length -= got
                filled += got
        except BaseException as exc:
            # Where this request's body ends on the connection is unknown now: gunicorn
            # must close it rather than parse the rest of the body as the next request.
            self._owner.failed = True
            if isinstance(exc, OSError) and not isinstance(exc, TimeoutError):
                raise _stopped(exc) from None
            raise
        return buffer[:filled]


def open_body(env: dict[str, Any]) -> Body:
    """The fastest correct reader of this request's body."""
    stream = env["wsgi.input"]
    fast = _gunicorn_socket_body(stream)
    if fast is not None:
        return fast
    chunked = _gunicorn_chunked_body(stream)
    return chunked if chunked is not None else StreamBody(stream)


def _gunicorn_chunked_body(stream: Any) -> ChunkedBody | None:
    """A ChunkedBody for gunicorn's Body(ChunkedReader) with nothing read yet, else None."""
    try:
        from gunicorn.http.body import Body as GunicornBody
        from gunicorn.http.body import ChunkedReader
    except ImportError:
        return None
    if type(stream) is not GunicornBody or type(stream.reader) is not ChunkedReader \
            or stream.failed or stream.buf.tell():
        return None
    return ChunkedBody(stream.reader, stream)


def _gunicorn_socket_body(stream: Any) -> SocketBody | None:
    """A SocketBody for gunicorn's Body(LengthReader(SocketUnreader)), else None."""
    try:
        from gunicorn.http.body import Body as GunicornBody
        from gunicorn.http.body import LengthReader
        from gunicorn.http.unreader import SocketUnreader
    except ImportError:
        return None
    if type(stream) is not GunicornBody or type(stream.reader) is not LengthReader:
        return None
    reader = stream.reader
    unreader = reader.unreader
    if type(unreader) is not SocketUnreader or not hasattr(unreader, "take_buffered") \
            or not isinstance(unreader.sock, socket.socket) or stream.failed:
        return None
    # Bytes already read: first what Body itself holds (it is ahead of the reader), then the
    # read-ahead of the headers, of which only `length` bytes belong to this body.
    held = stream.buf.getvalue()
    stream.buf.seek(0)
    stream.buf.truncate()
    ahead = unreader.take_buffered()
    mine = ahead[:reader.length]
    if len(ahead) > len(mine):
        unreader.unread(ahead[len(mine):])
    reader.length -= len(mine)
    return SocketBody(unreader.sock, held + mine, reader, stream)
