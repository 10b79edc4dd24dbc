"""The HTTP path against a real chute-api: retries over api_servers, Range resume, integrity.

A mid-stream drop is produced by a real TCP relay in front of the server that cuts its first
connection after N response bytes; the fetch must resume with `Range: bytes=M-` and still
produce a verified file.
"""

from __future__ import annotations

import os
import socket
import threading
from pathlib import Path

import pytest
from fetchenv import lines, warnings

from chute.client.image import Image
from chute.compute import image_service
from chute.compute.main import image_cache
from chute.errors import IntegrityError, TransferError

pytest_plugins = ["fetchenv"]  # fixtures: fetch_env, fetch_log

MiB = 1 << 20


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch):
    monkeypatch.setattr(image_service, "RETRY_DELAY", 0.05)


class CuttingRelay:
    """Relays TCP to `upstream`; the first connection is cut after `cut_after` response bytes."""

    def __init__(self, upstream_port: int, cut_after: int, strip_range: bool = False) -> None:
        self.upstream_port, self.cut_after = upstream_port, cut_after
        self.strip_range = strip_range  # like a proxy that drops Range: the server sends 200
        self.requests: list[bytes] = []
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.connections = 0
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            limit = self.cut_after if self.connections == 1 else None
            threading.Thread(target=self._serve, args=(client, limit), daemon=True).start()

    def _serve(self, client: socket.socket, limit: int | None) -> None:
        upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
        threading.Thread(target=self._upload, args=(client, upstream), daemon=True).start()
        sent = 0
        try:
            while chunk := upstream.recv(65536):
                if limit is not None and sent + len(chunk) > limit:
                    client.sendall(chunk[: limit - sent])
                    break
                client.sendall(chunk)
                sent += len(chunk)
        except OSError:
            pass
        finally:
            for sock in (client, upstream):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                sock.close()

    def _upload(self, client: socket.socket, upstream: socket.socket) -> None:
        try:
            while chunk := client.recv(65536):
                self.requests.append(chunk)
                if self.strip_range:
                    chunk = chunk.replace(b"Range: bytes=", b"X-Ignore: byte=")
                upstream.sendall(chunk)
        except OSError:
            pass

    def close(self) -> None:
        self.listener.close()


def http_conf(env, servers, **glance):
    return env.conf(schemes="", glance={"api_servers": ", ".join(servers), **glance})


def test_resumes_with_range_after_a_mid_stream_drop(fetch_env, fetch_log):
    data = os.urandom(12 * MiB)
    image = fetch_env.upload(data)
    relay = CuttingRelay(fetch_env.api.port, cut_after=5 * MiB)
    try:
        conf = http_conf(fetch_env, [relay.url])
        cache = image_cache(conf)
        got = cache.fetch(Image.parse(image))
    finally:
        relay.close()
    assert Path(got.path).read_bytes() == data and got.method == "http"
    sent = b"".join(relay.requests).decode("latin-1")
    assert sent.count(f"GET /v2/images/{image['id']}/file") == 2
    resumed = [w for w in warnings(fetch_log) if "retrying" in w]
    assert len(resumed) == 1
    offset = int(resumed[0].split(" after ")[1].split()[0])
    assert 0 < offset < len(data) and f"Range: bytes={offset}-" in sent
    assert lines(fetch_log, "Successfully transferred using http")


def test_starts_over_when_the_server_ignores_range(fetch_env, fetch_log):
    data = os.urandom(12 * MiB)
    image = fetch_env.upload(data)
    relay = CuttingRelay(fetch_env.api.port, cut_after=5 * MiB, strip_range=True)
    try:
        conf = http_conf(fetch_env, [relay.url])
        cache = image_cache(conf)
        got = cache.fetch(Image.parse(image))
    finally:
        relay.close()
    assert Path(got.path).read_bytes() == data
    sent = b"".join(relay.requests).decode("latin-1")
    assert sent.count(f"GET /v2/images/{image['id']}/file") == 3  # cut, 200 to a Range, full
    assert lines(fetch_log, "Successfully transferred using http")


def test_tries_the_next_api_server_on_connection_errors(fetch_env, fetch_log):
    data = os.urandom(MiB)
    image = fetch_env.upload(data)
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{closed.getsockname()[1]}"  # bound, not listening: refused
        conf = http_conf(fetch_env, [dead, fetch_env.api.url])
        cache = image_cache(conf)
        got = cache.fetch(Image.parse(image))
    assert Path(got.path).read_bytes() == data
    assert any(dead in w and "retrying" in w for w in warnings(fetch_log))


def test_gives_up_after_one_plus_num_retries_attempts(fetch_env, fetch_log):
    image = fetch_env.upload(os.urandom(4096))
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{closed.getsockname()[1]}"
        conf = http_conf(fetch_env, [dead], num_retries=2)
        cache = image_cache(conf)
        with pytest.raises(TransferError, match="failed after 3 attempt"):
            cache.fetch(Image.parse(image))
    assert len([w for w in warnings(fetch_log) if "retrying" in w]) == 2
    assert not list(Path(cache.dir).glob("*.part"))


def test_http_mismatch_is_integrity_error_not_retried(fetch_env, fetch_log):
    data = os.urandom(MiB)
    image = fetch_env.upload(data)
    stored = fetch_env.stored(image)
    stored.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    conf = http_conf(fetch_env, [fetch_env.api.url])
    cache = image_cache(conf)
    with pytest.raises(IntegrityError) as caught:
        cache.fetch(Image.parse(image))
    assert caught.value.message.startswith("image data does not match its checksum")
    assert not [w for w in warnings(fetch_log) if "retrying" in w]
    assert not os.path.exists(cache.base_path(image["id"]))


def test_zero_chunks_arrive_as_holes(fetch_env, fetch_log):
    data = bytearray(24 * MiB)
    data[4 * MiB:5 * MiB] = os.urandom(MiB)
    data[-10:] = b"0123456789"
    image = fetch_env.upload(bytes(data))
    conf = http_conf(fetch_env, [fetch_env.api.url])
    cache = image_cache(conf)
    base = Path(cache.fetch(Image.parse(image)).path)
    assert base.read_bytes() == data
    assert base.stat().st_blocks * 512 <= 9 * MiB  # 2 chunks of 4 MiB with data, not 24 MiB
