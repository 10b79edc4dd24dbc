"""openstacksdk's cloud layer (what Ansible's modules call) with the README's clouds.yaml:
create_image(wait=True), create_server(wait=True), delete_server(wait=True)."""

from __future__ import annotations

import hashlib

import openstack
import pytest


@pytest.fixture(scope="module")
def conn(cloud, monkeypatch_module) -> openstack.connection.Connection:
    monkeypatch_module.setenv("OS_CLIENT_CONFIG_FILE", str(cloud.clouds_yaml))
    return openstack.connect(cloud="chute")


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as patch:
        yield patch


@pytest.fixture(scope="module")
def image(conn, tmp_path_factory):
    disk = tmp_path_factory.mktemp("sdk-cloud") / "disk.raw"
    disk.write_bytes(b"\x5a" * (1 << 20))
    made = conn.create_image("sdk-cloud", filename=str(disk), disk_format="raw",
                             container_format="bare", wait=True, timeout=60)
    return made


def test_create_image_waits_for_an_active_image(conn, image):
    assert image.status == "active" and image.size == 1 << 20
    assert conn.get_image("sdk-cloud").id == image.id


def test_a_server_booted_then_deleted_with_wait(conn, image, cloud):
    server = conn.compute.create_server(name="sdk-cloud-vm", image_id=image.id, flavor_id="1",
                                        networks="none")
    server = conn.compute.wait_for_server(server, status="ACTIVE", interval=0.1, wait=60)
    assert conn.get_server("sdk-cloud-vm").status == "ACTIVE"
    assert conn.delete_server("sdk-cloud-vm", wait=True, timeout=60) is True
    assert conn.get_server("sdk-cloud-vm") is None
    assert not (cloud.compute.instances_path / server.id).exists()


def test_create_server_wait_gets_a_server_with_an_address(conn, image):
    """The cloud layer deletes an ACTIVE server that has no address (Nova's too, with
    networks none): chute's servers have the host network's fixed address."""
    server = conn.create_server("sdk-cloud-wait", image=image.id, flavor="m1.tiny", wait=True,
                                auto_ip=False, timeout=60)
    assert server.status == "ACTIVE"
    (port,) = server.addresses["private"]
    assert port["addr"] == "10.0.2.15" and port["OS-EXT-IPS:type"] == "fixed"
    assert server.private_v4 == "10.0.2.15"
    assert conn.delete_server(server.id, wait=True, timeout=60) is True


def test_create_image_with_use_import_stages_and_imports(conn, cloud, tmp_path):
    """`create_image(use_import=True, wait=True)`: the cloud layer stages the file and asks
    for a glance-direct import, then polls until the image is active."""
    disk = tmp_path / "import.raw"
    disk.write_bytes(b"\x17" * (1 << 20))
    made = conn.create_image("sdk-import", filename=str(disk), disk_format="raw",
                             container_format="bare", use_import=True, wait=True, timeout=60)
    assert made.status == "active" and made.size == 1 << 20
    assert conn.image.get_image(made.id).checksum == hashlib.md5(disk.read_bytes()).hexdigest()
    assert f"image {made.id}: uploading -> importing -> active (glance-direct" in \
        cloud.api.log_path.read_text()
