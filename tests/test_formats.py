"""chute.formats on real images made by qemu-img."""

from __future__ import annotations

import subprocess
import sys

import pytest

from chute.errors import UnsupportedFormat
from chute.formats import StreamInspector, inspect_file
from tests.helpers.disks import make_luks, qemu_img, qemu_info

MiB = 1 << 20


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    d = tmp_path_factory.mktemp("formats")
    (d / "disk.raw").write_bytes(b"\x01" * MiB)
    qemu_img("create", "-f", "qcow2", str(d / "plain.qcow2"), "32M")
    qemu_img("create", "-f", "qcow2", "-b", str(d / "disk.raw"), "-F", "raw",
             str(d / "backed.qcow2"))
    qemu_img("create", "-f", "qcow2", "-o", f"data_file={d / 'data.raw'}", str(d / "df.qcow2"),
             "8M")
    qemu_img("create", "-f", "vmdk", str(d / "sparse.vmdk"), "16M")
    qemu_img("create", "-f", "vmdk", "-o", "subformat=monolithicFlat", str(d / "flat.vmdk"), "4M")
    qemu_img("create", "-f", "vmdk", "-o", "subformat=streamOptimized", str(d / "stream.vmdk"),
             "16M")
    qemu_img("create", "-f", "vpc", str(d / "disk.vhd"), "8M")
    qemu_img("create", "-f", "vhdx", str(d / "disk.vhdx"), "8M")
    # Not `qemu-img create -f luks`: its PBKDF2 timing fails at random here (see make_luks).
    make_luks(d / "disk.luks", 4 * MiB)
    assert qemu_info(d / "disk.luks")["format"] == "luks"
    return d


@pytest.mark.parametrize("name,disk_format,expected", [
    ("plain.qcow2", "qcow2", ("qcow2", 32 * MiB)),
    ("sparse.vmdk", "vmdk", ("vmdk", 16 * MiB)),
    ("stream.vmdk", "vmdk", ("vmdk", 16 * MiB)),
    ("disk.vhdx", "vhdx", ("vhdx", 8 * MiB)),
    ("disk.raw", "raw", ("raw", MiB)),
    ("disk.raw", "ami", ("raw", None)),
    ("plain.qcow2", "raw", ("qcow2", None)),  # raw accepts anything safe, as Glance
])
def test_accepted(images, name, disk_format, expected):
    info = inspect_file(str(images / name), disk_format)
    assert info.format == expected[0]
    if expected[1] is not None:
        assert info.virtual_size == expected[1]


def test_vhd_is_detected(images):
    info = inspect_file(str(images / "disk.vhd"), "vhd")
    assert info.format == "vhd" and info.virtual_size >= 8 * MiB


@pytest.mark.parametrize("name,disk_format,text", [
    ("backed.qcow2", "qcow2", "backing file"),
    ("backed.qcow2", "raw", "backing file"),
    ("df.qcow2", "qcow2", "data_file"),
    ("flat.vmdk", "vmdk", "safety checks"),
    ("disk.raw", "qcow2", "does not match stream data raw"),
    ("plain.qcow2", "vmdk", "does not match stream data qcow2"),
    ("disk.vhdx", "qcow2", "does not match"),
])
def test_refused(images, name, disk_format, text):
    with pytest.raises(UnsupportedFormat) as info:
        inspect_file(str(images / name), disk_format)
    assert text in info.value.message


def test_stream_inspector_matches_inspect_file_for_odd_chunks(images):
    data = (images / "plain.qcow2").read_bytes()
    inspector = StreamInspector()
    for offset in range(0, len(data), 777):
        inspector.feed(data[offset:offset + 777])
    assert inspector.finish("qcow2").virtual_size == 32 * MiB


def test_stream_inspector_reads_raw_size_after_it_stopped_inspecting():
    inspector = StreamInspector()
    for _ in range(5):
        inspector.feed(b"\x07" * MiB)
    assert inspector.finish("raw").virtual_size == 5 * MiB


# A fresh interpreter: whether `cryptography` got imported is a property of the whole process.
_LUKS_WITHOUT_CRYPTOGRAPHY = """
import sys
from chute.errors import UnsupportedFormat
from chute.formats import inspect_file
try:
    inspect_file(sys.argv[1], "qcow2")
except UnsupportedFormat as exc:
    print(exc.message)
print("cryptography imported:", any(m.split(".")[0] == "cryptography" for m in sys.modules))
"""


def test_luks_is_detected_without_loading_cryptography(images):
    result = subprocess.run([sys.executable, "-c", _LUKS_WITHOUT_CRYPTOGRAPHY,
                             str(images / "disk.luks")], capture_output=True, text=True,
                            check=True, timeout=60)
    assert result.stdout.splitlines() == [
        "Image disk_format qcow2 does not match stream data luks",
        "cryptography imported: False"]


def test_oslo_luks_module_answers_through_the_stand_in():
    from oslo_utils.imageutils import format_inspector

    luks = format_inspector._luks
    assert luks.LUKS_SECTOR_SIZE == 512 and callable(luks.parse_key_slot)
