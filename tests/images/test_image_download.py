"""`GET /v2/images/{id}/file`: exact headers, Range, and the no-data case."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
from pathlib import Path

import pytest
import requests

from chute.images.api_data import DOWNLOAD_SEND_BUFFER
from tests.helpers.images import JSON, create, upload
from tests.helpers.polling import wait_for
from tests.helpers.procs import children

pytestmark = pytest.mark.backend_independent  # bytes and headers served from the store

DATA = os.urandom(1 << 20)


@pytest.fixture(scope="module")
def image(shared_api):
    made = create(shared_api)
    assert upload(shared_api, made["id"], DATA).status_code == 204
    return f"{shared_api.url}/v2/images/{made['id']}/file"


def test_download_headers_and_bytes(image):
    resp = requests.get(image)
    assert resp.status_code == 200
    assert resp.headers["Content-Type"] == "application/octet-stream"
    assert resp.headers["Content-Length"] == str(len(DATA))
    assert resp.headers["Content-MD5"] == hashlib.md5(DATA).hexdigest()
    assert resp.headers["x-openstack-request-id"].startswith("req-")
    assert resp.content == DATA


def send_buffers(pids: list[int]) -> list[int]:
    """The send buffer of each unix socket the processes hold (`ss`: tb, in bytes)."""
    listing = subprocess.run(["ss", "-x", "-m", "-p"], capture_output=True, text=True,
                             check=True).stdout
    owners = "|".join(map(str, pids))
    return [int(tb) for tb in re.findall(
        rf"pid=(?:{owners}),[^\n]*\n?\s*skmem:\([^)]*tb(\d+)", listing)]


def test_a_download_hands_the_front_end_a_mib_at_a_time(shared_api):
    """The worker's socket to HAProxy holds DOWNLOAD_SEND_BUFFER of the body, not Linux's
    default (208 KiB): fewer wake-ups of the worker, HAProxy and the reader per GiB."""
    data = os.urandom(16 << 20)  # more than the sockets and HAProxy hold: the worker waits
    made = create(shared_api)
    assert upload(shared_api, made["id"], data).status_code == 204
    wmem_max = int(Path("/proc/sys/net/core/wmem_max").read_text())
    widened = 2 * min(DOWNLOAD_SEND_BUFFER, wmem_max)  # Linux doubles what it is asked
    workers = children(shared_api.proc.pid)
    with requests.get(f"{shared_api.url}/v2/images/{made['id']}/file", stream=True) as resp:
        assert resp.status_code == 200
        wait_for(lambda: widened in send_buffers(workers), 10,
                 f"a worker socket with a {widened}-byte send buffer")
        assert hashlib.md5(resp.raw.read()).digest() == hashlib.md5(data).digest()


@pytest.mark.parametrize("header,start,end", [
    ("bytes=0-4", 0, 4), ("bytes=1000-", 1000, len(DATA) - 1),
    ("bytes=-10", len(DATA) - 10, len(DATA) - 1), ("bytes=5-99999999", 5, len(DATA) - 1),
])
def test_range_is_206(image, header, start, end):
    resp = requests.get(image, headers={"Range": header})
    assert resp.status_code == 206
    assert resp.headers["Content-Range"] == f"bytes {start}-{end}/{len(DATA)}"
    assert resp.headers["Content-Length"] == str(end - start + 1)
    assert resp.content == DATA[start:end + 1]


@pytest.mark.parametrize("header,status", [
    (f"bytes={len(DATA)}-", 416), ("bytes=abc", 416), ("bytes=5-6,0-1", 400),
    ("bytes=0-5,5-6", 400), (f"bytes=0-1,{len(DATA)}-", 416),
])
def test_bad_ranges(image, header, status):
    assert requests.get(image, headers={"Range": header}).status_code == status


def test_several_ranges_are_one_multipart_answer(image):
    """As RFC 9110 14.6 frames it, which the compute host's extents fetch reads strictly."""
    ranges = [(0, 4), (1000, 1999), (len(DATA) - 10, len(DATA) - 1)]
    spec = ",".join(f"{first}-{last}" for first, last in ranges)
    resp = requests.get(image, headers={"Range": f"bytes={spec}"})
    assert resp.status_code == 206 and "Content-Range" not in resp.headers
    media, _, boundary = resp.headers["Content-Type"].partition("; boundary=")
    assert media == "multipart/byteranges" and boundary
    assert resp.headers["Content-Length"] == str(len(resp.content))
    expected = b"\r\n".join(
        b"--%s\r\nContent-Type: application/octet-stream\r\nContent-Range: bytes %d-%d/%d"
        b"\r\n\r\n%s" % (boundary.encode(), first, last, len(DATA), DATA[first:last + 1])
        for first, last in ranges) + b"\r\n--%s--\r\n" % boundary.encode()
    assert resp.content == expected


def test_no_data_is_204_and_unknown_is_404(shared_api):
    queued = create(shared_api)
    resp = requests.get(f"{shared_api.url}/v2/images/{queued['id']}/file")
    assert resp.status_code == 204 and resp.content == b""
    missing = requests.get(f"{shared_api.url}/v2/images/nope/file", headers=JSON)
    assert missing.status_code == 404


def test_vanished_file_is_204(shared_api):
    made = create(shared_api)
    upload(shared_api, made["id"], b"soon gone")
    os.unlink(shared_api.datadir / made["id"])
    assert requests.get(f"{shared_api.url}/v2/images/{made['id']}/file").status_code == 204


def test_truncated_file_is_not_served(shared_api):
    made = create(shared_api)
    upload(shared_api, made["id"], b"0123456789")
    os.truncate(shared_api.datadir / made["id"], 5)
    assert requests.get(f"{shared_api.url}/v2/images/{made['id']}/file").status_code == 204


def test_legacy_content_range_request_header(image):
    resp = requests.get(image, headers={"Content-Range": f"bytes 10-19/{len(DATA)}"})
    assert resp.status_code == 206 and resp.content == DATA[10:20]
    assert requests.get(image, headers={"Content-Range": "bytes x"}).status_code == 416
