"""Upload bodies read straight from gunicorn's socket: exact framing, read-ahead and keep-alive."""

from __future__ import annotations

import hashlib
import io
import os
import socket
import threading

import pytest
from gunicorn.http.body import Body as GunicornBody
from gunicorn.http.body import LengthReader
from gunicorn.http.unreader import SocketUnreader

from chute.errors import Invalid
from chute.images.body import SocketBody, StreamBody, open_body
from tests.helpers.blocksref import blake3_blocks
from tests.helpers.images import create, show

pytestmark = pytest.mark.backend_independent  # socket framing and keep-alive

MiB = 1 << 20


def _put(image_id: str, body: bytes) -> bytes:
    return (f"PUT /v2/images/{image_id}/file HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Content-Type: application/octet-stream\r\nContent-Length: {len(body)}\r\n"
            f"\r\n").encode() + body


def _get(image_id: str, close: bool) -> bytes:
    extra = "Connection: close\r\n" if close else ""
    return (f"GET /v2/images/{image_id} HTTP/1.1\r\nHost: 127.0.0.1\r\n{extra}"
            "Accept: application/json\r\n\r\n").encode()


def _read_all(sock: socket.socket) -> bytes:
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def _assert_stored(api, image_id: str, data: bytes) -> None:
    got = show(api, image_id)
    assert got["status"] == "active"
    assert got["size"] == len(data)
    assert got["checksum"] == hashlib.md5(data).hexdigest()
    assert got["os_hash_value"] == hashlib.sha512(data).hexdigest()
    assert got["os_glance_blake3_blocks"] == blake3_blocks(data)
    assert (api.datadir / image_id).read_bytes() == data


@pytest.mark.parametrize("size", [0, 100, 9 * MiB + 5])
def test_pipelined_request_after_an_upload_is_answered(shared_api, size):
    """The body, and the next request behind it, arrive in the same segments as the headers:
    the body reader must take exactly Content-Length bytes and leave the rest to gunicorn."""
    data = os.urandom(size)
    image = create(shared_api)
    with socket.create_connection(("127.0.0.1", shared_api.port), timeout=30) as sock:
        sock.sendall(_put(image["id"], data) + _get(image["id"], close=True))
        replies = _read_all(sock)
    assert replies.startswith(b"HTTP/1.1 204 ")
    assert replies.count(b"HTTP/1.1 200 ") == 1
    if size:
        _assert_stored(shared_api, image["id"], data)
    else:
        assert show(shared_api, image["id"])["status"] == "active"


def test_connection_is_reused_after_a_multi_chunk_upload(shared_api):
    data = os.urandom(6 * MiB + 3)
    image = create(shared_api)
    with socket.create_connection(("127.0.0.1", shared_api.port), timeout=30) as sock:
        sock.sendall(_put(image["id"], data))
        reply = sock.recv(4096)
        assert reply.startswith(b"HTTP/1.1 204 ")
        sock.sendall(_get(image["id"], close=True))
        assert _read_all(sock).startswith(b"HTTP/1.1 200 ")
    _assert_stored(shared_api, image["id"], data)


def _gunicorn_body(sock: socket.socket, length: int, first_recv: int) -> GunicornBody:
    """gunicorn's own reader objects as its parser leaves them after the headers: the
    unreader has read `first_recv` bytes ahead (body start, maybe the next request)."""
    unreader = SocketUnreader(sock)
    unreader.unread(sock.recv(first_recv, socket.MSG_WAITALL))
    return GunicornBody(LengthReader(unreader, length))


def _send_later(sock: socket.socket, data: bytes, close: bool = False) -> threading.Thread:
    """Send from a thread: a socketpair holds far less than the MiBs the reader waits for."""

    def send() -> None:
        sock.sendall(data)
        if close:
            sock.close()

    thread = threading.Thread(target=send, daemon=True)
    thread.start()
    return thread


def test_gunicorn_content_length_bodies_take_the_socket_path():
    """Pins the gunicorn internals the fast path relies on: if they change, this fails
    instead of uploads silently falling back to the copying reader."""
    left, right = socket.socketpair()
    with left, right:
        body = _gunicorn_body(right, 10, 0)
        assert isinstance(open_body({"wsgi.input": body}), SocketBody)


def test_socket_body_reads_exactly_its_length_and_hands_back_the_rest():
    data = os.urandom(3 * MiB + 11)
    left, right = socket.socketpair()
    with left, right:
        left.sendall(data[:1000])
        body = _gunicorn_body(right, len(data), 1000)
        reader = open_body({"wsgi.input": body})
        sender = _send_later(left, data[1000:] + b"NEXT REQUEST")
        buffer = memoryview(bytearray(MiB))
        got = b""
        while chunk := reader.read_chunk(buffer):
            got += bytes(chunk)
        assert got == data
        assert body.reader.length == 0
        assert body.reader.unreader.read(12) == b"NEXT REQUEST"
        assert body.read(10) == b""
        sender.join()


def test_socket_body_hang_up_is_invalid_and_marks_the_body_failed():
    left, right = socket.socketpair()
    with right:
        body = _gunicorn_body(right, 5 * MiB, 0)
        reader = open_body({"wsgi.input": body})
        sender = _send_later(left, b"x" * MiB, close=True)
        buffer = memoryview(bytearray(4 * MiB))
        with pytest.raises(Invalid, match="stopped sending"):
            reader.read_chunk(buffer)
        assert body.failed
        sender.join()


def test_socket_body_stall_raises_timeout():
    left, right = socket.socketpair()
    with left, right:
        right.settimeout(0.2)
        reader = open_body({"wsgi.input": _gunicorn_body(right, MiB, 0)})
        with pytest.raises(TimeoutError):
            reader.read_chunk(memoryview(bytearray(MiB)))


def test_other_inputs_are_read_with_read():
    stream = io.BytesIO(b"abc" * 1000)
    reader = open_body({"wsgi.input": stream})
    assert isinstance(reader, StreamBody)
    assert reader.read_chunk(memoryview(bytearray(2000))) == b"abc" * 666 + b"ab"
