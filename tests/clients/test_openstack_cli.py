"""python-openstackclient (`openstack`) on the image commands, with the README's clouds.yaml
(auth_type none, endpoint overrides): create by upload and by `--import`, list, show, set,
save, delete."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

OPENSTACK = str(Path(sys.executable).parent / "openstack")


def openstack(cloud, *args: str) -> str:
    proc = subprocess.run([OPENSTACK, "--os-cloud", "chute", *args], capture_output=True,
                          text=True, env=cloud.env(), timeout=120, check=False,
                          stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, (args, proc.stderr)
    return proc.stdout


def shown(cloud, *args: str) -> dict:
    return json.loads(openstack(cloud, *args, "-f", "json"))


@pytest.fixture(scope="module")
def disk(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("openstack-cli") / "disk.raw"
    path.write_bytes(bytes(range(256)) * 8192)
    return path


def test_image_create_import_stages_and_imports(cloud, disk):
    made = shown(cloud, "image", "create", "--import", "--disk-format", "raw",
                 "--container-format", "bare", "--file", str(disk), "cli-imported")
    image = shown(cloud, "image", "show", made["id"])
    assert image["status"] == "active"
    assert image["checksum"] == hashlib.md5(disk.read_bytes()).hexdigest()
    assert f"image {made['id']}: uploading -> importing -> active (glance-direct" in \
        cloud.api.log_path.read_text()


def test_an_image_life_through_openstack(cloud, disk, tmp_path):
    made = shown(cloud, "image", "create", "--disk-format", "raw", "--container-format",
                 "bare", "--file", str(disk), "--property", "os_distro=debian", "cli-image")
    assert made["status"] == "active"
    assert any(i["ID"] == made["id"] for i in shown(cloud, "image", "list"))
    openstack(cloud, "image", "set", "--name", "cli-image2", "--property", "hw_disk_bus=scsi",
              made["id"])
    image = shown(cloud, "image", "show", made["id"])
    assert image["name"] == "cli-image2" and image["properties"]["hw_disk_bus"] == "scsi"
    openstack(cloud, "image", "save", "--file", str(tmp_path / "copy"), made["id"])
    assert (tmp_path / "copy").read_bytes() == disk.read_bytes()
    openstack(cloud, "image", "delete", made["id"])
    assert not any(i["ID"] == made["id"] for i in shown(cloud, "image", "list"))
