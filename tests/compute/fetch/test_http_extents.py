"""The HTTP fetch by extents against a real chute-api: only the data moves, holes stay holes,
and a server without extents, or with extents we cannot trust, gets the whole-image GET.

Hostile or foreign servers are a real HTTP proxy in front of chute-api (`Proxy`) that answers
`/extents` as told (404 like Glance, malformed, or lying) and relays everything else.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests

from chute.client.image import Image
from chute.compute.fetch import http as http_fetch
from chute.compute.main import image_cache
from chute.errors import IntegrityError, TransferError
from tests.helpers.fetch import http_conf, lines, warnings
from tests.helpers.images import rewrite_sparse
from tests.helpers.relay import CuttingRelay

pytestmark = pytest.mark.usefixtures("quick_retries")

KiB, MiB = 1 << 10, 1 << 20
SIZE = 32 * MiB
DATA_AT = [(2 * MiB, 6 * MiB + 64 * KiB), (12 * MiB, MiB)]  # the image's data; the rest zeros


def sparse_data() -> bytes:
    data = bytearray(SIZE)
    for offset, length in DATA_AT:
        data[offset:offset + length] = os.urandom(length)
    return bytes(data)


@pytest.fixture
def sparse_image(fetch_env) -> tuple[dict, bytes]:
    data = sparse_data()
    image = fetch_env.upload(data)
    rewrite_sparse(fetch_env.stored(image), data)
    return image, data


Rewrite = Callable[[dict], Any]  # the real extents answer -> what the proxy sends instead


class Proxy:
    """A real HTTP/1.1 server relaying to chute-api, answering `/extents` its own way:
    `extents_status` instead of asking upstream, or `rewrite(answer)` as the body."""

    def __init__(self, upstream: str, extents_status: int | None = None,
                 rewrite: Rewrite | None = None) -> None:
        self.upstream, self.extents_status, self.rewrite = upstream, extents_status, rewrite
        self.requests: list[tuple[str, str | None]] = []  # (path, Range header)
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.session = requests.Session()
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.session.close()

    def answer(self, path: str, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        self.requests.append((path, headers.get("Range")))
        if path.endswith("/extents") and self.extents_status is not None:
            return self.extents_status, {"Content-Type": "text/plain"}, b"not here"
        resp = self.session.get(self.upstream + path, timeout=30,
                                headers={k: v for k, v in headers.items()
                                         if k in ("Range", "Accept")})
        body = resp.content
        if path.endswith("/extents") and self.rewrite is not None and resp.status_code == 200:
            changed = self.rewrite(resp.json())
            body = changed if isinstance(changed, bytes) else json.dumps(changed).encode()
        keep = {k: v for k, v in resp.headers.items()
                if k.lower() in ("content-type", "content-range")}
        return resp.status_code, keep, body

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                status, headers, body = proxy.answer(self.path, dict(self.headers))
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        return Handler


@pytest.fixture
def proxy(fetch_env):
    made: list[Proxy] = []

    def start(**options: Any) -> Proxy:
        made.append(Proxy(fetch_env.api.url, **options))
        return made[-1]

    yield start
    for one in made:
        one.close()


def requested_ranges(sent: str) -> list[list[tuple[int, int]]]:
    """The inclusive (first, last) ranges of each Range header a relay saw, per request."""
    found = []
    for line in sent.split("\r\n"):
        if line.startswith("Range: bytes="):
            specs = line.removeprefix("Range: bytes=").split(",")
            found.append([(int(a), int(b)) for a, b in (spec.split("-") for spec in specs)])
    return found


def fetch_through(env, server: str, image: dict, **glance: Any):
    cache = image_cache(http_conf(env, [server], **glance))
    return cache, cache.fetch(Image.parse(image))


def test_only_the_data_extents_move_and_holes_stay_holes(fetch_env, fetch_log, sparse_image):
    image, data = sparse_image
    relay = CuttingRelay(fetch_env.api.port, cut_after=1 << 40)  # never cuts: counts only
    try:
        _, got = fetch_through(fetch_env, relay.url, image)
    finally:
        relay.close()
    base = Path(got.path)
    assert base.read_bytes() == data and base.stat().st_size == SIZE
    assert (got.method, got.primitive, got.nbytes) == ("http", "extents", SIZE)
    moved = sum(length for _, length in DATA_AT)
    assert base.stat().st_blocks * 512 <= moved + 256 * KiB  # not SIZE
    sent = b"".join(relay.requests).decode("latin-1")
    assert sent.count(f"GET /v2/images/{image['id']}/extents") == 1
    # Every data extent, in order, in one multipart/byteranges request.
    assert requested_ranges(sent) == [[(o, o + n - 1) for o, n in DATA_AT]]
    assert sent.count(f"GET /v2/images/{image['id']}/file") == 1
    assert relay.connections == 1  # keep-alive: the extents answer's connection
    assert lines(fetch_log, f"using http (extents, {moved} of {SIZE} bytes received in ")
    assert lines(fetch_log, "Successfully transferred using http")


def test_a_drop_inside_an_extent_resumes_there(fetch_env, fetch_log, sparse_image):
    image, data = sparse_image
    relay = CuttingRelay(fetch_env.api.port, cut_after=5 * MiB)  # inside the first extent
    try:
        _, got = fetch_through(fetch_env, relay.url, image)
    finally:
        relay.close()
    assert Path(got.path).read_bytes() == data and got.primitive == "extents"
    resumed = [w for w in warnings(fetch_log) if "retrying" in w]
    assert len(resumed) == 1
    offset = int(resumed[0].split(" after ")[1].split()[0])
    first, length = DATA_AT[0]
    assert first < offset < first + length
    sent = b"".join(relay.requests).decode("latin-1")
    assert [request[0] for request in requested_ranges(sent)][-1] == (offset, first + length - 1)


@pytest.mark.parametrize("status", [404, 405, 501])
def test_a_server_without_extents_gets_the_whole_image_get(fetch_env, fetch_log, proxy,
                                                            sparse_image, status):
    image, data = sparse_image
    glance = proxy(extents_status=status)  # a real Glance answers 404 for the path
    _, got = fetch_through(fetch_env, glance.url, image)
    base = Path(got.path)
    assert base.read_bytes() == data and (got.method, got.primitive) == ("http", None)
    # All-zero 4 MiB chunks left as holes: the four with data (and a little metadata, as
    # O_DIRECT allocation may add an extent tree block), not SIZE.
    assert base.stat().st_blocks * 512 <= SIZE // 2 + 256 * KiB
    assert (f"/v2/images/{image['id']}/file", None) in glance.requests
    assert lines(fetch_log, f"using http (stream, {SIZE} of {SIZE} bytes received in ")
    assert lines(fetch_log, "Successfully transferred using http")
    assert not warnings(fetch_log)


def _extents(doc: dict, *pairs: tuple[Any, Any]) -> dict:
    return {**doc, "extents": [{"offset": o, "length": n} for o, n in pairs]}


MALFORMED: dict[str, Rewrite] = {
    "overlapping": lambda d: _extents(d, (4 * MiB, 2 * MiB), (5 * MiB, MiB)),
    "unsorted": lambda d: _extents(d, *reversed([(e["offset"], e["length"])
                                                 for e in d["extents"]])),
    "past the size": lambda d: _extents(d, (SIZE - 10, 20)),
    "other size": lambda d: {**d, "size": SIZE * 2},
    "empty extent": lambda d: _extents(d, (4 * MiB, 0)),
    "negative": lambda d: _extents(d, (-1, 10)),
    "boolean": lambda d: _extents(d, (True, 10)),
    "string": lambda d: _extents(d, ("0", 10)),
    "not a list": lambda d: {**d, "extents": {"offset": 0}},
    "too many": lambda d: _extents(d, *[(i * 2, 1) for i in range(10_001)]),
    "not json": lambda d: b"<html>extents</html>",
    "too large": lambda d: json.dumps(d).encode() + b" " * (4 << 20),  # valid, but 4 MiB
}


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_extents_that_cannot_be_trusted_are_not_used(fetch_env, fetch_log, proxy,
                                                     sparse_image, name):
    image, data = sparse_image
    liar = proxy(rewrite=MALFORMED[name])
    _, got = fetch_through(fetch_env, liar.url, image)
    assert Path(got.path).read_bytes() == data and got.primitive is None
    assert not [p for p, rng in liar.requests if rng]  # no range GET on a bad plan
    if name == "too large":  # unreadable: as not offered (INFO), not parsed at all
        assert lines(fetch_log, "the extents answer is larger than")
    elif name != "not json":
        assert any("Not using the extents" in w for w in warnings(fetch_log))


def test_a_server_calling_data_a_hole_is_refused(fetch_env, fetch_log, proxy, sparse_image):
    image, _ = sparse_image
    liar = proxy(rewrite=lambda d: {**d, "extents": d["extents"][:1]})  # hides the 2nd extent
    cache = image_cache(http_conf(fetch_env, [liar.url]))
    with pytest.raises(IntegrityError, match="does not match its checksum"):
        cache.fetch(Image.parse(image))
    assert not [w for w in warnings(fetch_log) if "retrying" in w]
    assert not os.path.exists(cache.base_path(image["id"]))
    assert not list(Path(cache.dir).glob("*.part"))


def test_data_planted_in_a_hole_of_the_store_is_refused(fetch_env, fetch_log, sparse_image):
    image, _ = sparse_image
    with open(fetch_env.stored(image), "r+b") as stored:  # behind the image service's back
        stored.seek(20 * MiB)
        stored.write(b"\x01")
    cache = image_cache(http_conf(fetch_env, [fetch_env.api.url]))
    extents = requests.get(f"{fetch_env.api.url}/v2/images/{image['id']}/extents",
                           timeout=10).json()["extents"]
    assert len(extents) == len(DATA_AT) + 1  # the server describes the file it has
    with pytest.raises(IntegrityError, match="does not match its checksum"):
        cache.fetch(Image.parse(image))
    assert not os.path.exists(cache.base_path(image["id"]))


def test_a_server_ignoring_range_gets_the_whole_image_get(fetch_env, fetch_log, sparse_image):
    image, data = sparse_image
    relay = CuttingRelay(fetch_env.api.port, cut_after=1 << 40, strip_range=True)
    try:
        _, got = fetch_through(fetch_env, relay.url, image)
    finally:
        relay.close()
    assert Path(got.path).read_bytes() == data and got.primitive is None
    assert any("ignored a Range request" in w for w in warnings(fetch_log))


def test_failing_ranges_give_up_after_one_plus_num_retries(fetch_env, fetch_log, proxy,
                                                           sparse_image):
    image, _ = sparse_image

    class Broken(Proxy):
        def answer(self, path, headers):
            if headers.get("Range"):
                self.requests.append((path, headers["Range"]))
                return 503, {"Content-Type": "text/plain"}, b"busy"
            return super().answer(path, headers)

    broken = Broken(fetch_env.api.url)
    try:
        cache = image_cache(http_conf(fetch_env, [broken.url], num_retries=2))
        with pytest.raises(TransferError, match="failed after 3 attempt"):
            cache.fetch(Image.parse(image))
    finally:
        broken.close()
    assert len([w for w in warnings(fetch_log) if "retrying" in w]) == 2
    assert len([p for p, rng in broken.requests if rng]) == 3
    assert not list(Path(cache.dir).glob("*.part"))


def test_a_dense_image_takes_the_whole_image_get(fetch_env, fetch_log, proxy):
    data = os.urandom(3 * MiB)
    image = fetch_env.upload(data)
    seen = proxy()
    _, got = fetch_through(fetch_env, seen.url, image)
    assert Path(got.path).read_bytes() == data and got.primitive is None  # nothing to skip
    assert seen.requests == [(f"/v2/images/{image['id']}/extents", None),
                             (f"/v2/images/{image['id']}/file", None)]


def test_an_image_of_zeros_needs_no_data_request(fetch_env, fetch_log, proxy):
    image = fetch_env.upload(bytes(8 * MiB))
    rewrite_sparse(fetch_env.stored(image), bytes(8 * MiB))
    seen = proxy()
    _, got = fetch_through(fetch_env, seen.url, image)
    base = Path(got.path)
    assert base.read_bytes() == bytes(8 * MiB) and got.primitive == "extents"
    assert base.stat().st_blocks == 0
    assert seen.requests == [(f"/v2/images/{image['id']}/extents", None)]


MANY_AT = [(offset * MiB, 256 * KiB) for offset in range(1, 32, 3)]  # 11 extents, 2.75 MiB


# The relay cuts its first connection, which carries the extents answer and the first range:
# the cut lands inside the first extent while the next ones are already asked for.
@pytest.mark.parametrize("cut_after", [1 << 40, 100 * KiB])
def test_many_extents_arrive_in_order_with_requests_in_flight(fetch_env, fetch_log, cut_after,
                                                              monkeypatch):
    """More requests than are kept in flight (a Range header of ~2 extents: 6 requests),
    with and without a drop inside the first: the multipart answers sent ahead are consumed
    in order (or dropped and asked again after the cut) and the base is the image."""
    monkeypatch.setattr(http_fetch, "RANGE_HEADER", 40)
    data = bytearray(SIZE)
    for offset, length in MANY_AT:
        data[offset:offset + length] = os.urandom(length)
    image = fetch_env.upload(bytes(data))
    rewrite_sparse(fetch_env.stored(image), bytes(data))
    relay = CuttingRelay(fetch_env.api.port, cut_after=cut_after)
    try:
        _, got = fetch_through(fetch_env, relay.url, image)
    finally:
        relay.close()
    assert Path(got.path).read_bytes() == data and got.primitive == "extents"
    sent = b"".join(relay.requests).decode("latin-1")
    requests_sent = requested_ranges(sent)
    asked_ends = {last for request in requests_sent for _, last in request}
    assert {offset + length - 1 for offset, length in MANY_AT} <= asked_ends
    assert len(requests_sent) > 1 + http_fetch.AHEAD
    assert any(len(request) > 1 for request in requests_sent)  # multipart answers
    retried = [w for w in warnings(fetch_log) if "retrying" in w]
    assert len(retried) == (0 if cut_after == 1 << 40 else 1)


def test_a_server_refusing_several_ranges_gets_one_request_per_extent(fetch_env, fetch_log,
                                                                      proxy, sparse_image):
    """A chute-api from before multipart answers (400 "Multiple ranges are not supported")
    still moves only the data extents, one request each."""
    image, data = sparse_image

    class OneRangeOnly(Proxy):
        def answer(self, path, headers):
            if "," in headers.get("Range", ""):
                self.requests.append((path, headers["Range"]))
                return 400, {"Content-Type": "text/plain"}, b"Multiple ranges are not supported."
            return super().answer(path, headers)

    older = OneRangeOnly(fetch_env.api.url)
    try:
        _, got = fetch_through(fetch_env, older.url, image)
    finally:
        older.close()
    assert Path(got.path).read_bytes() == data and got.primitive == "extents"
    singles = [rng for _, rng in older.requests if rng and "," not in rng]
    assert singles == [f"bytes={o}-{o + n - 1}" for o, n in DATA_AT]
    assert lines(fetch_log, "asking for one extent per request")


@pytest.mark.parametrize("name", ["parts reordered", "wrong boundary", "short part"])
def test_a_multipart_answer_we_cannot_follow_gets_the_whole_image_get(fetch_env, fetch_log,
                                                                      proxy, sparse_image,
                                                                      name):
    image, data = sparse_image

    class Mangler(Proxy):
        def answer(self, path, headers):
            status, kept, body = super().answer(path, headers)
            if status != 206 or "," not in headers.get("Range", ""):
                return status, kept, body
            content_type = next(v for k, v in kept.items() if k.lower() == "content-type")
            boundary = content_type.split("boundary=")[1].encode()
            if name == "wrong boundary":
                body = body.replace(boundary, b"x" * len(boundary))
            elif name == "parts reordered":
                pieces = body.split(b"--" + boundary)  # "", part 1, part 2, "--\r\n"
                body = b"--" + boundary + (b"--" + boundary).join(
                    [pieces[2].removesuffix(b"\r\n") + b"\r\n", pieces[1], pieces[3]])
            else:  # a part shorter than its Content-Range, the body still framed
                first_data = body.index(b"\r\n\r\n") + 4
                body = body[:first_data] + body[first_data + 1000:]
            return status, kept, body

    mangler = Mangler(fetch_env.api.url)
    try:
        _, got = fetch_through(fetch_env, mangler.url, image)
    finally:
        mangler.close()
    assert Path(got.path).read_bytes() == data and got.primitive is None
    assert any("not usable" in w for w in warnings(fetch_log))
