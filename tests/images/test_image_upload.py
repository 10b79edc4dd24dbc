"""Uploads: integrity, limits and every failure path, each proving nothing is left in the store."""

from __future__ import annotations

import hashlib
import os
import re
import socket
import time

import pytest
import requests

from tests.helpers.blocksref import blake3_blocks
from tests.helpers.disks import make_qcow2, qemu_img
from tests.helpers.images import (
    JSON,
    assert_nothing_stored,
    create,
    open_upload,
    show,
    store_files,
    upload,
)

MiB = 1 << 20


def wait_status(api, image_id, status, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        current = show(api, image_id)["status"]
        if current == status:
            return
        time.sleep(0.05)
    raise AssertionError(f"image {image_id} stayed {current}, expected {status}")


def test_content_length_upload_records_hashes_location_and_metadata(shared_api):
    data = os.urandom(5 * MiB + 7)
    image = create(shared_api, name="cl")
    resp = upload(shared_api, image["id"], data)
    assert resp.status_code == 204, resp.text
    got = show(shared_api, image["id"])
    assert got["status"] == "active"
    assert got["size"] == len(data) == got["virtual_size"]
    assert got["checksum"] == hashlib.md5(data).hexdigest()
    assert got["os_hash_algo"] == "sha512"
    assert got["os_hash_value"] == hashlib.sha512(data).hexdigest()
    assert got["os_glance_blake3_blocks"] == blake3_blocks(data)
    path = shared_api.datadir / image["id"]
    assert got["locations"] == [{"url": f"file://{path}",
                                 "metadata": {"id": "shared-fs-1",
                                              "mountpoint": str(shared_api.root / "store")}}]
    assert got["direct_url"] == f"file://{path}"
    assert path.read_bytes() == data


def test_chunked_upload_without_declared_size(shared_api):
    data = os.urandom(3 * MiB + 1)
    image = create(shared_api)

    def chunks():
        for offset in range(0, len(data), 100_000):
            yield data[offset:offset + 100_000]

    assert upload(shared_api, image["id"], chunks()).status_code == 204
    got = show(shared_api, image["id"])
    assert got["size"] == len(data)
    assert got["os_hash_value"] == hashlib.sha512(data).hexdigest()


def test_second_upload_of_active_image_is_409(shared_api):
    image = create(shared_api)
    assert upload(shared_api, image["id"], b"x" * 1000).status_code == 204
    resp = upload(shared_api, image["id"], b"y" * 1000)
    assert resp.status_code == 409
    assert "active to saving" in resp.json()["message"]
    assert (shared_api.datadir / image["id"]).read_bytes() == b"x" * 1000


@pytest.mark.parametrize("declared", [999, 1001])
def test_declared_size_mismatch_is_400_and_nothing_stored(shared_api, declared):
    image = create(shared_api)
    resp = upload(shared_api, image["id"], b"z" * 1000,
                  headers={"x-openstack-image-size": str(declared)})
    assert resp.status_code == 400
    assert "Size" in resp.json()["message"]
    assert_nothing_stored(shared_api, image["id"])


def _reply_while_body_unsent(sock, sent):
    """The server's answer, read while the client still holds back the rest of its body: a
    server that waits for (or reads) more than `sent` bytes never answers here."""
    reply = b""
    try:
        while b"\r\n\r\n" not in reply or len(reply.partition(b"\r\n\r\n")[2]) < int(
                re.search(rb"(?i)content-length: *(\d+)", reply).group(1)):
            got = sock.recv(65536)
            if not got:
                break
            reply += got
    except TimeoutError:
        raise AssertionError(f"no answer after {sent} body bytes: the server waited for more "
                             "of a body already past its declared size") from None
    finally:
        sock.close()
    return reply.decode(errors="replace")


# A declared size that ends mid-chunk (chunks are 1 MiB), after a few whole chunks.
OVER = 3 * MiB + 5


@pytest.mark.backend_independent
def test_body_past_declared_size_is_400_at_the_first_byte_too_many(shared_api):
    """x-openstack-image-size under a larger Content-Length: the byte after the declared size
    is refused at once, without waiting for the rest of the 64 MiB body."""
    image = create(shared_api)
    body = os.urandom(OVER + 1)
    sock = socket.create_connection(("127.0.0.1", shared_api.port), timeout=10)
    head = (f"PUT /v2/images/{image['id']}/file HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            "Accept: application/json\r\n"
            f"Content-Type: application/octet-stream\r\nx-openstack-image-size: {OVER}\r\n"
            f"Content-Length: {64 * MiB}\r\n\r\n")
    sock.sendall(head.encode() + body)
    reply = _reply_while_body_unsent(sock, len(body))
    assert reply.startswith("HTTP/1.1 400"), reply[:300]
    assert f"Size exceeds: expected {OVER} bytes" in reply, reply[:600]
    assert_nothing_stored(shared_api, image["id"])


@pytest.mark.backend_independent
def test_chunked_body_past_declared_size_is_400_at_the_first_byte_too_many(shared_api):
    """A chunked body (no Content-Length) whose declared size is exceeded: refused at the
    first byte too many, before the client has sent the rest or the terminating chunk."""
    image = create(shared_api)
    sock = socket.create_connection(("127.0.0.1", shared_api.port), timeout=10)
    head = (f"PUT /v2/images/{image['id']}/file HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            "Accept: application/json\r\n"
            f"Content-Type: application/octet-stream\r\nx-openstack-image-size: {OVER}\r\n"
            "Transfer-Encoding: chunked\r\n\r\n")
    piece = os.urandom(MiB)
    chunks = [piece] * 3 + [piece[:6]]  # OVER + 1 bytes in all, no last chunk
    sock.sendall(head.encode() + b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks))
    reply = _reply_while_body_unsent(sock, OVER + 1)
    assert reply.startswith("HTTP/1.1 400"), reply[:300]
    assert f"Size exceeds: expected {OVER} bytes" in reply, reply[:600]
    assert_nothing_stored(shared_api, image["id"])


@pytest.mark.backend_independent
def test_bad_declared_size_header_is_400(shared_api):
    image = create(shared_api)
    resp = upload(shared_api, image["id"], b"z", headers={"x-openstack-image-size": "big"})
    assert resp.status_code == 400
    assert_nothing_stored(shared_api, image["id"])


@pytest.mark.backend_independent
def test_wrong_content_type_is_415(shared_api):
    image = create(shared_api)
    resp = requests.put(f"{shared_api.url}/v2/images/{image['id']}/file", data=b"abc",
                        headers={"Content-Type": "text/plain", **JSON})
    assert resp.status_code == 415
    assert_nothing_stored(shared_api, image["id"])


@pytest.mark.backend_independent
def test_missing_formats_is_400(shared_api):
    resp = requests.post(shared_api.url + "/v2/images", json={"name": "noformat"}, headers=JSON)
    image = resp.json()
    resp = upload(shared_api, image["id"], b"abc")
    assert resp.status_code == 400
    assert "disk_format, container_format must be set" in resp.json()["message"]
    assert_nothing_stored(shared_api, image["id"])


def test_unknown_image_upload_is_404(shared_api):
    assert upload(shared_api, "0" * 8 + "-0000-0000-0000-" + "0" * 12, b"a").status_code == 404


def test_image_size_cap_and_quota_are_413(start_api):
    api = start_api(DEFAULT={"image_size_cap": MiB, "user_storage_quota": "3MB"})
    declared = create(api)
    resp = upload(api, declared["id"], os.urandom(MiB + 1))
    assert resp.status_code == 413 and "too large" in resp.json()["message"]
    assert_nothing_stored(api, declared["id"])

    streamed = create(api)
    resp = upload(api, streamed["id"], iter([os.urandom(MiB // 2)] * 3))
    assert resp.status_code == 413
    assert_nothing_stored(api, streamed["id"])

    for _ in range(3):
        assert upload(api, create(api)["id"], os.urandom(MiB)).status_code == 204
    over = create(api)
    resp = upload(api, over["id"], b"q" * 10)
    assert resp.status_code == 413 and "quota" in resp.json()["message"]
    assert_nothing_stored(api, over["id"])


@pytest.mark.backend_independent
def test_an_early_413_reaches_the_client_whole_every_time(start_api):
    """The worker answers 413 at the first byte past the cap and closes with the rest of the
    body unread. A unix socket closed with unread data is reset, and HAProxy then cut the
    answer short now and then (about 4 in 100 on a busy machine): the worker drains what is
    left before it closes (wsgi_server.REFUSED_BODY_DRAIN)."""
    api = start_api(DEFAULT={"image_size_cap": MiB, "workers": 2})
    cut = []
    for _ in range(300):
        try:
            resp = upload(api, create(api)["id"], iter([os.urandom(MiB // 2)] * 3))
            assert resp.status_code == 413 and "too large" in resp.json()["message"]
        except requests.ConnectionError as exc:
            cut.append(str(exc))
    assert cut == []


@pytest.mark.backend_independent
def test_qcow2_with_backing_file_is_refused(shared_api, tmp_path):
    base = tmp_path / "base.raw"
    base.write_bytes(b"\0" * MiB)
    path = make_qcow2(tmp_path / "backed.qcow2", "1M", "-b", str(base), "-F", "raw", data_mb=0)
    image = create(shared_api, disk_format="qcow2")
    resp = upload(shared_api, image["id"], path.read_bytes())
    assert resp.status_code == 415
    assert "backing file" in resp.json()["message"]
    assert_nothing_stored(shared_api, image["id"])
    # Declaring it raw does not smuggle it past the safety checks.
    image = create(shared_api, disk_format="raw")
    assert upload(shared_api, image["id"], path.read_bytes()).status_code == 415
    assert_nothing_stored(shared_api, image["id"])


@pytest.mark.backend_independent
def test_qcow2_with_data_file_is_refused(shared_api, tmp_path):
    path = make_qcow2(tmp_path / "df.qcow2", "1M", "-o", f"data_file={tmp_path / 'data.raw'}",
                      data_mb=0)
    image = create(shared_api, disk_format="qcow2")
    resp = upload(shared_api, image["id"], path.read_bytes())
    assert resp.status_code == 415
    assert "data_file" in resp.json()["message"]
    assert_nothing_stored(shared_api, image["id"])


@pytest.mark.backend_independent
def test_vmdk_with_flat_extent_is_refused(shared_api, tmp_path):
    path = tmp_path / "sparse.vmdk"
    qemu_img("create", "-f", "vmdk", str(path), "1M")
    data = path.read_bytes()
    start = data.index(b"RW 2048 SPARSE")
    end = data.index(b"\n", start)
    evil = b'RW 2048 FLAT "/etc/passwd" 0'
    assert len(evil) <= end - start
    data = data[:start] + evil.ljust(end - start) + data[end:]
    image = create(shared_api, disk_format="vmdk")
    resp = upload(shared_api, image["id"], data)
    assert resp.status_code == 415
    assert "Invalid extent filenames" in resp.json()["message"]
    assert_nothing_stored(shared_api, image["id"])


@pytest.mark.backend_independent
@pytest.mark.parametrize("disk_format", ["qcow2", "vmdk", "vhdx", "iso"])
def test_raw_content_declared_otherwise_is_refused(shared_api, disk_format):
    image = create(shared_api, disk_format=disk_format)
    resp = upload(shared_api, image["id"], os.urandom(256 * 1024))
    assert resp.status_code == 415
    assert f"disk_format {disk_format} does not match stream data raw" in resp.json()["message"]
    assert_nothing_stored(shared_api, image["id"])


def test_qcow2_gets_virtual_size_and_ovf_is_not_inspected(shared_api, tmp_path):
    path = make_qcow2(tmp_path / "ok.qcow2", "64M", data_mb=0)
    image = create(shared_api, disk_format="qcow2")
    assert upload(shared_api, image["id"], path.read_bytes()).status_code == 204
    assert show(shared_api, image["id"])["virtual_size"] == 64 * MiB
    other = create(shared_api, disk_format="qcow2", container_format="ovf")
    assert upload(shared_api, other["id"], b"not a qcow2").status_code == 204
    assert show(shared_api, other["id"])["virtual_size"] is None


def test_concurrent_second_upload_is_409_and_hangup_cleans_up(shared_api):
    image = create(shared_api)
    sock = open_upload(shared_api, image["id"], 4 * MiB, os.urandom(MiB), timeout=10)
    try:
        wait_status(shared_api, image["id"], "saving")
        assert any(n.endswith(".partial") for n in store_files(shared_api))
        resp = upload(shared_api, image["id"], b"second")
        assert resp.status_code == 409
        assert "saving to saving" in resp.json()["message"]
    finally:
        sock.close()  # hang up mid-body
    wait_status(shared_api, image["id"], "queued")
    assert_nothing_stored(shared_api, image["id"])
    # The image can be uploaded again after the failure.
    assert upload(shared_api, image["id"], b"retry").status_code == 204


@pytest.mark.backend_independent
def test_stalled_client_is_dropped_after_client_socket_timeout(start_api):
    api = start_api(DEFAULT={"client_socket_timeout": 1})
    image = create(api)
    # More than the front end holds back (chute.front_end.BUFFER_BYTES): a worker reads it.
    sock = open_upload(api, image["id"], 2 * MiB, b"a" * (128 * 1024), timeout=10)
    try:
        wait_status(api, image["id"], "saving")
        wait_status(api, image["id"], "queued", timeout=10)
        assert_nothing_stored(api, image["id"])
    finally:
        sock.close()


def test_image_deleted_during_upload_is_410_and_nothing_left(shared_api):
    image = create(shared_api)
    body = os.urandom(2 * MiB)
    sock = open_upload(shared_api, image["id"], len(body), body[:MiB], timeout=10)
    try:
        wait_status(shared_api, image["id"], "saving")
        assert requests.delete(f"{shared_api.url}/v2/images/{image['id']}").status_code == 204
        sock.sendall(body[MiB:])
        reply = sock.recv(4096).decode()
    finally:
        sock.close()
    assert reply.startswith("HTTP/1.1 410"), reply
    assert [n for n in store_files(shared_api) if image["id"] in n] == []
    assert requests.get(f"{shared_api.url}/v2/images/{image['id']}").status_code == 404


def test_chunked_hangup_is_cleaned_up_without_a_server_error(shared_api):
    import socket

    image = create(shared_api)
    sock = socket.create_connection(("127.0.0.1", shared_api.port), timeout=10)
    head = (f"PUT /v2/images/{image['id']}/file HTTP/1.1\r\nHost: x\r\n"
            "Content-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\n\r\n")
    sock.sendall(head.encode() + b"100000\r\n" + os.urandom(300_000))
    wait_status(shared_api, image["id"], "saving")
    sock.close()
    wait_status(shared_api, image["id"], "queued")
    assert_nothing_stored(shared_api, image["id"])
    lines = [line for line in shared_api.log_text().splitlines() if image["id"] in line]
    assert any("The client stopped sending" in line for line in lines), lines
    assert "unexpected error" not in shared_api.log_text()
