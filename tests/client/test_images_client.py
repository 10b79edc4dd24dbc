"""chute.client.images.ImageClient against a real chute-api."""

from __future__ import annotations

import hashlib
import io
import os
import time
import uuid

import pytest
import requests

from chute.client._http import error_message
from chute.client.download import download_image
from chute.client.images import ImageClient
from chute.errors import IntegrityError, RemoteError, RemoteUnavailable, TransferError

DATA = os.urandom(5 * 1024 * 1024 + 7)


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
    done = download_image(client, image, str(tmp_path / "d.raw"))
    assert (tmp_path / "d.raw").read_bytes() == DATA
    assert done.nbytes == len(DATA) and done.algorithm == "blake3-blocks"
    forged = dict(image, chute_blake3_blocks="0" * 64)
    with pytest.raises(IntegrityError, match="chute_blake3_blocks"):
        download_image(client, forged, str(tmp_path / "bad.raw"))
    # A Glance server has no chute_blake3_blocks: the multihash is checked instead.
    glance_doc = {k: v for k, v in image.items() if k != "chute_blake3_blocks"}
    assert download_image(client, glance_doc, str(tmp_path / "g.raw")).algorithm == "sha512"
    with pytest.raises(IntegrityError, match="os_hash_value"):
        download_image(client, dict(glance_doc, os_hash_value="0" * 128),
                       str(tmp_path / "bad.raw"))
    md5_only = dict(glance_doc, os_hash_algo=None, os_hash_value=None)
    assert download_image(client, md5_only, str(tmp_path / "m.raw")).algorithm == "md5"
    with pytest.raises(IntegrityError, match="checksum"):
        download_image(client, dict(md5_only, checksum="0" * 32), str(tmp_path / "bad.raw"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.raw", "g.raw", "m.raw"]


def test_unreachable_and_endpoint_forms(shared_api):
    with pytest.raises(RemoteUnavailable) as info:
        ImageClient("http://127.0.0.1:9", timeout=5).get("x")
    assert "cannot reach http://127.0.0.1:9" in info.value.message
    # Catalog-style endpoints ending in /v2 work too.
    image = ImageClient(shared_api.url).create(name="v2-endpoint")
    assert ImageClient(shared_api.url + "/v2/").get(image["id"])["name"] == "v2-endpoint"
