"""openstacksdk, unchanged and without Keystone, against chute-api."""

from __future__ import annotations

import hashlib
import os
import uuid
from pathlib import Path

import pytest

openstack = pytest.importorskip("openstack")

# A client's compatibility: what it stores is checked on each backend by test_images_api.
pytestmark = pytest.mark.backend_independent


@pytest.fixture
def conn(shared_api, tmp_path, monkeypatch):
    """No Keystone: auth_type none plus an endpoint override, the documented stand-alone set-up;
    the SDK discovers the API version from GET / (300 with the version list)."""
    monkeypatch.setenv("HOME", str(tmp_path))  # no clouds.yaml or caches from the host
    for key in [k for k in os.environ if k.startswith("OS_")]:
        monkeypatch.delenv(key)
    connection = openstack.connect(auth_type="none", image_endpoint_override=shared_api.url,
                                   load_yaml_config=False, load_envvars=False)
    yield connection
    connection.close()


@pytest.fixture
def raw_file(tmp_path: Path) -> Path:
    path = tmp_path / "sdk.raw"
    path.write_bytes(os.urandom(3 * 1024 * 1024 + 5))
    return path


def test_cloud_layer_image_lifecycle(conn, raw_file, tmp_path):
    data = raw_file.read_bytes()
    name = f"sdk-{uuid.uuid4().hex}"  # unique: the session's server is shared
    image = conn.create_image(name, filename=str(raw_file), disk_format="raw",
                              container_format="bare", wait=True, meta={"os_distro": "cirros"})
    assert image.status == "active"
    assert image.checksum == hashlib.md5(data).hexdigest()
    assert image.hash_value == hashlib.sha512(data).hexdigest()
    assert image.os_distro == "cirros"

    got = conn.get_image(image.id)
    assert got.id == image.id and got.size == len(data)
    assert conn.get_image(name).id == image.id  # by name: 404 on the id path first
    assert conn.image.find_image(name).id == image.id
    assert conn.image.find_image("no-such-image") is None
    assert image.id in [i.id for i in conn.image.images()]
    assert [i.id for i in conn.image.images(name=name)] == [image.id]

    conn.update_image_properties(image=image, meta={"hw_disk_bus": "scsi",
                                                    "chute_color": "blue"})
    updated = conn.get_image(image.id)
    assert updated.hw_disk_bus == "scsi"  # a property the SDK knows by name
    assert updated.properties["chute_color"] == "blue"  # a free-form one

    target = tmp_path / "sdk-download.raw"
    conn.download_image(image.id, output_file=str(target))  # the SDK checks the md5 itself
    assert target.read_bytes() == data

    assert conn.delete_image(image.id, wait=True)
    assert conn.get_image(image.id) is None


def test_proxy_layer_update_tags_download(conn, raw_file):
    data = raw_file.read_bytes()
    image = conn.image.create_image(name="proxy", filename=str(raw_file), disk_format="raw",
                                    container_format="bare", validate_checksum=True)
    image = conn.image.wait_for_status(conn.image.get_image(image.id), "active", wait=30)
    conn.image.update_image(image, name="proxy-renamed", min_ram=256)
    fresh = conn.image.get_image(image.id)
    assert fresh.name == "proxy-renamed" and fresh.min_ram == 256

    silver = uuid.uuid4().hex
    conn.image.add_tag(fresh, "gold")
    conn.image.add_tag(fresh, silver)
    assert sorted(conn.image.get_image(image.id).tags) == sorted(["gold", silver])
    conn.image.remove_tag(fresh, "gold")
    assert conn.image.get_image(image.id).tags == [silver]
    assert [i.id for i in conn.image.images(tag=silver)] == [image.id]

    response = conn.image.download_image(fresh, stream=True)
    assert b"".join(response.iter_content(1 << 20)) == data
    assert response.headers["Content-MD5"] == hashlib.md5(data).hexdigest()
    assert conn.image.download_image(fresh).content == data  # checked against Content-MD5

    conn.image.deactivate_image(fresh)
    assert conn.image.get_image(image.id).status == "deactivated"
    conn.image.reactivate_image(fresh)
    conn.image.delete_image(fresh, ignore_missing=False)
    with pytest.raises(openstack.exceptions.NotFoundException):
        conn.image.get_image(image.id)


def test_sdk_errors_carry_the_server_message(conn):
    with pytest.raises(openstack.exceptions.NotFoundException) as info:
        conn.image.get_image("00000000-0000-4000-8000-000000000000")
    assert "No image found" in str(info.value)


def test_sdk_download_notices_a_corrupted_store_file(conn, shared_api, raw_file):
    """The SDK checks the md5 we advertise (Content-MD5 = recorded checksum) against the bytes
    we send, so a rotted store file is caught on the client, not passed off as the image."""
    image = conn.image.create_image(name=f"rot-{uuid.uuid4().hex}", filename=str(raw_file),
                                    disk_format="raw", container_format="bare")
    stored = shared_api.datadir / image.id
    with open(stored, "r+b") as handle:
        handle.seek(2048)
        handle.write(b"bitrot")
    with pytest.raises(openstack.exceptions.SDKException, match="(?i)checksum|md5"):
        conn.image.download_image(image)
