"""The HTTP path against a real chute-api: retries over api_servers, Range resume, integrity.

A mid-stream drop is produced by a real TCP relay in front of the server that cuts its first
connection after N response bytes; the fetch must resume with `Range: bytes=M-` and still
produce a verified file.
"""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

import pytest

from chute.client.image import Image
from chute.compute.main import image_cache
from chute.errors import IntegrityError, TransferError
from tests.helpers.fetch import http_conf, lines, warnings
from tests.helpers.relay import CuttingRelay

pytestmark = pytest.mark.usefixtures("quick_retries")

MiB = 1 << 20


def test_resumes_with_range_after_a_mid_stream_drop(fetch_env, fetch_log):
    data = os.urandom(12 * MiB)
    image = fetch_env.upload(data)
    relay = CuttingRelay(fetch_env.api.port, cut_after=5 * MiB)
    try:
        cache = image_cache(http_conf(fetch_env, [relay.url]))
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
        cache = image_cache(http_conf(fetch_env, [relay.url]))
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
        cache = image_cache(http_conf(fetch_env, [dead, fetch_env.api.url]))
        got = cache.fetch(Image.parse(image))
    assert Path(got.path).read_bytes() == data
    assert any(dead in w and "retrying" in w for w in warnings(fetch_log))


def test_gives_up_after_one_plus_num_retries_attempts(fetch_env, fetch_log):
    image = fetch_env.upload(os.urandom(4096))
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{closed.getsockname()[1]}"
        cache = image_cache(http_conf(fetch_env, [dead], num_retries=2))
        with pytest.raises(TransferError, match="failed after 3 attempt"):
            cache.fetch(Image.parse(image))
    assert len([w for w in warnings(fetch_log) if "retrying" in w]) == 2
    assert not list(Path(cache.dir).glob("*.part"))


def test_http_mismatch_is_integrity_error_not_retried(fetch_env, fetch_log):
    data = os.urandom(MiB)
    image = fetch_env.upload(data)
    stored = fetch_env.stored(image)
    stored.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    cache = image_cache(http_conf(fetch_env, [fetch_env.api.url]))
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
    cache = image_cache(http_conf(fetch_env, [fetch_env.api.url]))
    base = Path(cache.fetch(Image.parse(image)).path)
    assert base.read_bytes() == data
    assert base.stat().st_blocks * 512 <= 9 * MiB  # 2 chunks of 4 MiB with data, not 24 MiB


def test_a_dense_image_is_written_around_the_page_cache(fetch_env, fetch_log):
    # The base is written with O_DIRECT: a copy into fresh page cache costs more CPU than
    # the hash on these machines.
    data = os.urandom(32 * MiB + 4096 + 10)  # an unaligned tail, written the ordinary way
    image = fetch_env.upload(data)
    cache = image_cache(http_conf(fetch_env, [fetch_env.api.url]))
    base = Path(cache.fetch(Image.parse(image)).path)
    assert _cached_bytes(base) <= 4 * MiB  # the format check's first MiB, the tail
    assert base.read_bytes() == data
    assert _cached_bytes(base) == -(-len(data) // 4096) * 4096  # reading it fills the cache
    assert lines(fetch_log, "using http (stream,")


def _cached_bytes(path: Path) -> int:
    """Bytes of `path` in the page cache (util-linux's fincore, rounded up to pages)."""
    done = subprocess.run(["fincore", "--bytes", "--noheadings", "--output", "RES", str(path)],
                          capture_output=True, text=True, check=True)
    return int(done.stdout.strip())
