"""The config drive a boot leaves in the instance directory, read back with pycdlib (and its
label with blkid, as cloud-init finds it): the OpenStack layout with the server's name, keys,
metadata, zone and user data."""

import base64
import io
import json
import subprocess

import pycdlib

from tests.helpers.images import upload_image
from tests.helpers.servers import boot_body, nova, wait_built

LATEST = "/openstack/latest/"


def drive_files(path):
    iso = pycdlib.PyCdlib()
    iso.open(str(path))
    try:
        names = sorted(child.rock_ridge.name().decode()
                       for child in iso.list_children(rr_path=LATEST.rstrip("/"))
                       if child.rock_ridge is not None and not child.is_dot()
                       and not child.is_dotdot())
        found = {}
        for name in names:
            out = io.BytesIO()
            iso.get_file_from_iso_fp(out, rr_path=LATEST + name)
            found[name] = out.getvalue()
        label = iso.pvd.volume_identifier.decode().strip()
    finally:
        iso.close()
    return label, found


def boot(compute, image, **fields):
    resp = nova(compute, "POST", "/servers", json=boot_body(image, **fields))
    assert resp.status_code == 202, resp.text
    server = wait_built(compute, resp.json()["server"]["id"])
    assert server["status"] == "ACTIVE", server
    return server


def test_user_data_key_and_metadata_reach_the_drive(booting):
    compute, image = booting
    key = nova(compute, "POST", "/os-keypairs", json={"keypair": {"name": "drive-key"}})
    public_key = key.json()["keypair"]["public_key"]
    script = b"#!/bin/sh\necho from-user-data\n"
    server = boot(compute, image, name="Web Server_1", key_name="drive-key",
                  user_data=base64.b64encode(script).decode(), metadata={"role": "web"},
                  adminPass="pw")
    path = compute.instances_path / server["id"] / "disk.config"
    assert path.stat().st_mode & 0o777 == 0o600
    label, files = drive_files(path)
    assert label == "config-2"
    blkid = subprocess.run(["blkid", "-o", "value", "-s", "LABEL", str(path)],
                           capture_output=True, text=True, check=True)
    assert blkid.stdout.strip() == "config-2"
    assert sorted(files) == ["meta_data.json", "network_data.json", "user_data",
                             "vendor_data.json", "vendor_data2.json"]
    assert files["user_data"] == script
    meta = json.loads(files["meta_data.json"])
    assert meta["uuid"] == server["id"] and meta["name"] == "Web Server_1"
    assert meta["hostname"] == "web-server-1"
    assert meta["public_keys"] == {"drive-key": public_key}
    assert meta["keys"] == [{"name": "drive-key", "type": "ssh", "data": public_key}]
    assert meta["meta"] == {"role": "web"} and meta["availability_zone"] == "nova"
    assert meta["admin_pass"] == "pw"
    assert json.loads(files["network_data.json"]) == {"links": [], "networks": [],
                                                      "services": []}


def test_no_drive_unless_asked_or_needed(booting):
    compute, image = booting
    plain = boot(compute, image, name="plain")
    assert plain["config_drive"] == ""
    assert not (compute.instances_path / plain["id"] / "disk.config").exists()
    asked = boot(compute, image, name="asked", config_drive=True)
    assert asked["config_drive"] == "True"
    _, files = drive_files(compute.instances_path / asked["id"] / "disk.config")
    assert "user_data" not in files and json.loads(files["meta_data.json"])["name"] == "asked"


def test_force_config_drive_gives_every_server_one(shared_api, start_compute, tmp_path):
    compute = start_compute(shared_api, DEFAULT={"force_config_drive": True,
                                                 "default_availability_zone": "zone-b"})
    image = upload_image(shared_api, b"\0" * 65536)["id"]
    server = boot(compute, image, name="forced", availability_zone="zone-b")
    assert server["config_drive"] == "True"
    assert server["OS-EXT-AZ:availability_zone"] == "zone-b"
    _, files = drive_files(compute.instances_path / server["id"] / "disk.config")
    assert json.loads(files["meta_data.json"])["availability_zone"] == "zone-b"
