"""Instance disks from real bases: safety checks come before qemu-img, sizes follow the flavor."""

import subprocess

import pytest

from chute.compute import disks
from chute.compute.flavors import FLAVORS
from tests.helpers.disks import make_qcow2, make_raw, qemu_info

TINY = FLAVORS["1"]


def test_qcow2_base_with_a_backing_file_is_refused_before_qemu_img(tmp_path):
    secret = tmp_path / "host-secret"
    secret.write_bytes(b"not for guests")
    base = tmp_path / "base"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", str(secret), "-F", "raw",
                    str(base)], check=True)
    with pytest.raises(disks.DiskError, match="^Base image failed safety check: "):
        disks.create(str(tmp_path), "i1", str(base), "qcow2", TINY, "qcow2")
    assert not (tmp_path / "i1" / "disk").exists()


def test_content_not_matching_the_format_is_refused(tmp_path):
    base = make_qcow2(tmp_path / "base", "16M", data_mb=1)
    with pytest.raises(disks.DiskError, match="does not match"):
        disks.create(str(tmp_path), "i1", str(base), "vmdk", TINY, "qcow2")


def test_image_bigger_than_the_flavor_root_disk(tmp_path):
    base = make_qcow2(tmp_path / "base", "1025M", data_mb=0)
    with pytest.raises(disks.DiskError, match="Flavor's disk is too small for requested "
                                              f"image. Flavor disk is {1 << 30} bytes, image "
                                              f"is {1025 << 20} bytes."):
        disks.create(str(tmp_path), "i1", str(base), "qcow2", TINY, "raw")
    assert not (tmp_path / "i1" / "disk").exists()


def test_raw_disk_from_a_qcow2_base_is_converted_then_grown(tmp_path):
    base = make_qcow2(tmp_path / "base", "64M", data_mb=2)
    disk = disks.create(str(tmp_path), "i1", str(base), "qcow2", TINY, "raw")
    assert qemu_info(disk)["format"] == "raw"
    assert disk.stat().st_size == 1 << 30
    with open(disk, "rb") as data:
        assert data.read(2 << 20) == b"\x5a" * (2 << 20)
        assert data.read(1 << 20) == bytes(1 << 20)
    assert not (tmp_path / "i1" / "disk.tmp").exists()


def test_overlay_on_a_raw_base_names_its_backing_format(tmp_path):
    base = make_raw(tmp_path / "base", size_mb=1)
    disk = disks.create(str(tmp_path), "i1", str(base), "raw", FLAVORS["2"], "qcow2")
    info = qemu_info(disk)
    assert (info["format"], info["backing-filename"], info["backing-filename-format"]) == \
        ("qcow2", str(base), "raw")
    assert info["virtual-size"] == 20 << 30


def test_qemu_img_failure_carries_its_stderr():
    with pytest.raises(disks.DiskError, match=r"^qemu-img create failed: .*nosuchformat"):
        disks._qemu_img("create", "-f", "nosuchformat", "/nonexistent/disk", "1M")
