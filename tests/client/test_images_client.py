"""chute.client.images.ImageClient against a real chute-api."""

from __future__ import annotations

import hashlib
import io
import os
import socket
import threading
import time
import uuid

import pytest
import requests

from chute.client._http import error_message
from chute.client.download import download_image
from chute.client.image import Image
from chute.client.images import SEND_CHUNK, UPLOAD_CHUNK, ImageClient
from chute.errors import IntegrityError, RemoteError, RemoteUnavailable, TransferError

MiB = 1 << 20
DATA = os.urandom(5 * MiB + 7)


def _active_image(client: ImageClient, data: bytes = DATA) -> dict:
    image = client.create(name="c", disk_format="raw", container_format="bare")
    client.upload(image["id"], io.BytesIO(data), len(data))
    return client.get(image["id"])


def test_upload_reports_progress_and_sets_hashes(shared_api):
    client = ImageClient(shared_api.url)
    image = client.create(name="c", disk_format="raw", container_format="bare")
    seen: list[int] = []
    client.upload(image["id"], io.BytesIO(DATA), len(DATA), seen.append)
    assert sum(seen) == len(DATA) and max(seen) <= 4 * 1024 * 1024
    doc = client.get(image["id"])
    assert doc["status"] == "active" and doc["size"] == len(DATA)
    assert doc["checksum"] == hashlib.md5(DATA).hexdigest()
    assert doc["os_hash_value"] == hashlib.sha512(DATA).hexdigest()


def test_short_upload_is_abandoned_and_can_be_retried(shared_api):
    client = ImageClient(shared_api.url)
    image = client.create(name="c", disk_format="raw", container_format="bare")
    with pytest.raises(TransferError, match="ended after 1000 of"):
        client.upload(image["id"], io.BytesIO(DATA[:1000]), len(DATA))
    with pytest.raises(RemoteError) as info:  # a lying size header is refused by the server
        _retry_while_saving(lambda: client.api.request(
            "PUT", f"/v2/images/{image['id']}/file", data=DATA[:1000],
            headers={"Content-Type": "application/octet-stream",
                     "x-openstack-image-size": str(len(DATA))}))
    assert info.value.status == 400 and "1000" in info.value.message
    # The dropped connection made the server give up at once (not at its 120 s socket
    # timeout), so the image is back in queued and a full upload now works.
    _retry_while_saving(lambda: client.upload(image["id"], io.BytesIO(DATA), len(DATA)))
    assert client.get(image["id"])["status"] == "active"


def _retry_while_saving(call, seconds: float = 30):
    """Run `call`, retrying while the server still holds the image in `saving` (409)."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            return call()
        except RemoteError as exc:
            if exc.status != 409 or time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def test_open_download_streams_and_resumes_with_range(shared_api):
    client = ImageClient(shared_api.url)
    image = _active_image(client)
    with client.open_download(image["id"]) as resp:
        assert resp.status_code == 200
        assert resp.headers["Content-Type"] == "application/octet-stream"
        assert b"".join(resp.iter_content(1 << 20)) == DATA
    offset = 3 * 1024 * 1024 + 1
    with client.open_download(image["id"], offset=offset) as resp:
        assert resp.status_code == 206
        buf = bytearray(len(DATA))
        view, n = memoryview(buf), 0
        while chunk := resp.raw.readinto(view[n:]):
            n += chunk
        assert bytes(buf[:n]) == DATA[offset:]


def test_open_download_of_image_without_data(shared_api):
    client = ImageClient(shared_api.url)
    image = client.create(name="empty")
    with pytest.raises(RemoteError) as info:
        client.open_download(image["id"])
    assert info.value.status == 204 and "no data" in info.value.message


def test_download_body_reads_straight_into_our_buffer(shared_api):
    client = ImageClient(shared_api.url)
    image = _active_image(client)
    buf = memoryview(bytearray(len(DATA) + 10))
    n = 0
    with client.download_body(image["id"]) as body:
        assert body.status == 200
        assert body.getheader("Content-Type") == "application/octet-stream"
        while step := body.readinto(buf[n:]):
            n += step
    assert bytes(buf[:n]) == DATA


def test_download_body_errors_are_remote_errors(shared_api):
    client = ImageClient(shared_api.url)
    empty = client.create(name="empty")
    with pytest.raises(RemoteError) as info:
        with client.download_body(empty["id"]):
            pass
    assert info.value.status == 204 and "no data" in info.value.message
    with pytest.raises(RemoteError) as info:
        with client.download_body(str(uuid.uuid4())):
            pass
    assert info.value.status == 404 and "image" in info.value.message.lower()
    with pytest.raises(RemoteUnavailable):
        with ImageClient("http://127.0.0.1:9").download_body(str(uuid.uuid4())):
            pass


def _truncating_server(promised: int, sent: bytes) -> tuple[str, threading.Thread]:
    """An image endpoint that promises `promised` bytes of data, sends `sent`, and hangs up
    (a store or proxy dying mid-download)."""
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        conn, _ = listener.accept()
        with conn, listener:
            conn.recv(65536)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                         b"Content-Length: %d\r\n\r\n" % promised + sent)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return f"http://127.0.0.1:{listener.getsockname()[1]}", thread


def test_a_download_cut_off_mid_stream_fails_and_leaves_nothing(tmp_path):
    sent = os.urandom(3 * MiB + 5)
    url, server = _truncating_server(len(DATA), sent)
    image = {"id": str(uuid.uuid4()), "status": "active", "size": len(DATA),
             "checksum": hashlib.md5(DATA).hexdigest()}
    target = tmp_path / "out.raw"
    with pytest.raises(RemoteUnavailable) as info:
        download_image(ImageClient(url), Image.parse(image), str(target))
    server.join(5)
    assert f"download interrupted after {len(sent)} bytes" in info.value.message
    assert list(tmp_path.iterdir()) == []


def test_list_follows_next_links(shared_api):
    client = ImageClient(shared_api.url)
    tag = uuid.uuid4().hex
    ids = {client.create(name=f"{tag}-{i}", tags=[tag])["id"] for i in range(5)}
    assert {i["id"] for i in client.list(limit=2, tag=tag)} == ids
    assert [i["name"] for i in client.list(name=f"{tag}-3")] == [f"{tag}-3"]


def test_update_tags_actions_delete(shared_api):
    client = ImageClient(shared_api.url)
    image = _active_image(client, b"x" * 4096)
    doc = client.update(image["id"], [{"op": "replace", "path": "/name", "value": "new"},
                                      {"op": "add", "path": "/os_distro", "value": "debian"}])
    assert doc["name"] == "new" and doc["os_distro"] == "debian"
    client.add_tag(image["id"], "t1")
    assert client.get(image["id"])["tags"] == ["t1"]
    client.remove_tag(image["id"], "t1")
    client.deactivate(image["id"])
    assert client.get(image["id"])["status"] == "deactivated"
    client.reactivate(image["id"])
    assert client.get(image["id"])["status"] == "active"
    client.delete(image["id"])
    with pytest.raises(RemoteError) as info:
        client.get(image["id"])
    assert info.value.status == 404 and image["id"] in info.value.message


def test_errors_are_one_line_messages(shared_api):
    client = ImageClient(shared_api.url)
    with pytest.raises(RemoteError) as info:
        client.update("nope", [{"op": "replace", "path": "/status", "value": "active"}])
    assert "\n" not in info.value.message and "<" not in info.value.message
    image = client.create(name="ro")
    with pytest.raises(RemoteError) as info:
        client.update(image["id"], [{"op": "replace", "path": "/status", "value": "active"}])
    assert info.value.status == 403 and "read-only" in info.value.message


@pytest.mark.parametrize("accept", [None, "application/json", "text/plain"])
def test_error_message_reads_every_glance_error_shape(shared_api, accept):
    """WebOb-style negotiation gives HTML, JSON or plain text; all reduce to the sentence."""
    headers = {"Accept": accept} if accept else {}
    resp = requests.get(f"{shared_api.url}/v2/images/missing", headers=headers, timeout=10)
    assert resp.status_code == 404
    assert error_message(resp) == "No image found with ID missing"


def test_locations_endpoint_needs_the_service_token(start_api):
    api = start_api(DEFAULT={"service_token": "s3cret"})
    image = _active_image(ImageClient(api.url), b"y" * 8192)
    with pytest.raises(RemoteError) as info:
        ImageClient(api.url, token="wrong").locations(image["id"])
    assert info.value.status == 403
    [location] = ImageClient(api.url, token="s3cret").locations(image["id"])
    assert location["url"].startswith("file://")
    assert location["metadata"]["id"] == "shared-fs-1"


def test_download_image_verifies_and_renames(shared_api, tmp_path):
    client = ImageClient(shared_api.url)
    image = _active_image(client)
    done = download_image(client, Image.parse(image), str(tmp_path / "d.raw"))
    assert (tmp_path / "d.raw").read_bytes() == DATA
    assert done.nbytes == len(DATA) and done.algorithm == "blake3-blocks"
    forged = dict(image, os_glance_blake3_blocks="0" * 64)
    with pytest.raises(IntegrityError, match="os_glance_blake3_blocks"):
        download_image(client, Image.parse(forged), str(tmp_path / "bad.raw"))
    # A Glance server has no os_glance_blake3_blocks: the multihash is checked instead.
    glance_doc = {k: v for k, v in image.items() if k != "os_glance_blake3_blocks"}
    assert download_image(client, Image.parse(glance_doc),
                          str(tmp_path / "g.raw")).algorithm == "sha512"
    with pytest.raises(IntegrityError, match="os_hash_value"):
        download_image(client, Image.parse(dict(glance_doc, os_hash_value="0" * 128)),
                       str(tmp_path / "bad.raw"))
    md5_only = dict(glance_doc, os_hash_algo=None, os_hash_value=None)
    assert download_image(client, Image.parse(md5_only),
                          str(tmp_path / "m.raw")).algorithm == "md5"
    with pytest.raises(IntegrityError, match="checksum"):
        download_image(client, Image.parse(dict(md5_only, checksum="0" * 32)),
                       str(tmp_path / "bad.raw"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.raw", "g.raw", "m.raw"]


def test_unreachable_and_endpoint_forms(shared_api):
    with pytest.raises(RemoteUnavailable) as info:
        ImageClient("http://127.0.0.1:9", timeout=5).get("x")
    assert "cannot reach http://127.0.0.1:9" in info.value.message
    # Catalog-style endpoints ending in /v2 work too.
    image = ImageClient(shared_api.url).create(name="v2-endpoint")
    assert ImageClient(shared_api.url + "/v2/").get(image["id"])["name"] == "v2-endpoint"


# -- uploads of regular files (one reused buffer) and of pipes ------------------------------

BIG = os.urandom(40 * MiB + 7)  # many SEND_CHUNKs, not a multiple of one


@pytest.fixture
def big_file(tmp_path):
    path = tmp_path / "big.raw"
    path.write_bytes(BIG)
    return path


def _wait_status(client: ImageClient, image_id: str, status: str, seconds: float = 30) -> None:
    """The server notices a dropped upload on its own schedule; wait for it, bounded."""
    deadline = time.monotonic() + seconds
    while client.get(image_id)["status"] != status:
        assert time.monotonic() < deadline, client.get(image_id)
        time.sleep(0.1)


def test_regular_file_goes_out_in_chunks_of_one_buffer(shared_api, big_file):
    client = ImageClient(shared_api.url, token="t")
    image = client.create(name="chunks", disk_format="raw", container_format="bare")
    seen: list[int] = []
    with open(big_file, "rb") as data:
        client.upload(image["id"], data, len(BIG), seen.append)
    assert seen == [SEND_CHUNK] * (len(BIG) // SEND_CHUNK) + [len(BIG) % SEND_CHUNK]
    doc = client.get(image["id"])
    assert doc["status"] == "active" and doc["size"] == len(BIG)
    assert doc["checksum"] == hashlib.md5(BIG).hexdigest()
    assert doc["os_hash_value"] == hashlib.sha512(BIG).hexdigest()


def test_file_shorter_than_its_size_is_abandoned(shared_api, big_file):
    client = ImageClient(shared_api.url)
    image = client.create(name="short", disk_format="raw", container_format="bare")
    with open(big_file, "rb") as data, pytest.raises(TransferError) as info:
        client.upload(image["id"], data, len(BIG) + 1000)
    assert info.value.message == (f"the data ended after {len(BIG)} of {len(BIG) + 1000} "
                                  f"bytes; upload abandoned")
    _wait_status(client, image["id"], "queued")


def test_file_truncated_during_upload_is_abandoned(shared_api, big_file):
    client = ImageClient(shared_api.url)
    image = client.create(name="shrinks", disk_format="raw", container_format="bare")

    def truncate_after_first_slice(_sent: int) -> None:
        os.truncate(big_file, 20 * MiB)

    with open(big_file, "rb") as data, pytest.raises(TransferError) as info:
        client.upload(image["id"], data, len(BIG), truncate_after_first_slice)
    assert f"ended after {20 * MiB} of {len(BIG)} bytes" in info.value.message
    _wait_status(client, image["id"], "queued")
    big_file.write_bytes(BIG)  # the retry the message asks for works
    with open(big_file, "rb") as data:
        _retry_while_saving(lambda: client.upload(image["id"], data, len(BIG)))
    assert client.get(image["id"])["status"] == "active"


def test_early_refusal_is_read_after_the_broken_pipe(start_api, big_file):
    """chute-api refuses a declared size over image_size_cap before reading the body and
    closes; the client must report that answer, not the broken pipe it sees."""
    api = start_api(DEFAULT={"image_size_cap": MiB})
    client = ImageClient(api.url)
    image = client.create(name="capped", disk_format="raw", container_format="bare")
    with open(big_file, "rb") as data, pytest.raises(RemoteError) as info:
        client.upload(image["id"], data, len(BIG))
    assert info.value.status == 413 and "image_size_cap" in info.value.message
    assert client.get(image["id"])["status"] == "queued"


def test_server_hanging_up_mid_upload_is_one_clear_error(hangup_server, big_file):
    client = ImageClient(hangup_server, timeout=10)
    with open(big_file, "rb") as data, pytest.raises(RemoteUnavailable) as info:
        client.upload("0" * 32, data, len(BIG))
    assert info.value.message.startswith(f"{hangup_server} broke off the request: ")
    assert "\n" not in info.value.message


def test_pipe_goes_through_chunks(shared_api):
    client = ImageClient(shared_api.url)
    image = client.create(name="pipe", disk_format="raw", container_format="bare")
    read_end, write_end = os.pipe()

    def feed() -> None:
        with os.fdopen(write_end, "wb") as out:
            out.write(BIG)

    feeder = threading.Thread(target=feed)
    feeder.start()
    seen: list[int] = []
    with os.fdopen(read_end, "rb") as data:
        client.upload(image["id"], data, len(BIG), seen.append)
    feeder.join()
    assert sum(seen) == len(BIG) and max(seen) <= UPLOAD_CHUNK
    doc = client.get(image["id"])
    assert doc["status"] == "active" and doc["checksum"] == hashlib.md5(BIG).hexdigest()
