"""Hostile image content (issue 5 item 8): refused at upload (415, nothing kept, image back to
queued), and refused again by chute-compute when such bytes reach its store or its cache.

Images are made by qemu-img and then damaged by hand (header bytes patched, descriptors
rewritten, files cut), as an attacker would. On the compute side a backing file / extent names a
FIFO trap outside every mountpoint: qemu-img (or anything) opening it would block, and
opentrap's inotify watch reports any open at all - so "no qemu-img ran on it" is proven by the
kernel, not by a log line.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import time
from pathlib import Path
from typing import Callable

import pytest

from chute.client.image import Expected, Image
from tests.helpers.digests import base_name, sha512_file
from tests.helpers.disks import make_qcow2, qemu_img
from tests.helpers.images import create, show, upload
from tests.helpers.opentrap import OpenTrap
from tests.helpers.servers import base_dir, boot_and_wait

# -- building hostile images ---------------------------------------------------------------

def backing_qcow2(path: Path, backing: str) -> Path:
    # -u: do not open the backing file while creating (it may be a trap).
    qemu_img("create", "-q", "-f", "qcow2", "-u", "-b", backing, "-F", "raw", str(path), "16M")
    return path


def data_file_qcow2(path: Path) -> Path:
    qemu_img("create", "-q", "-f", "qcow2", "-o", f"data_file={path}.data", str(path), "16M")
    return path


FLAT_DESCRIPTOR = """# Disk DescriptorFile
version=1
CID=fffffffe
parentCID=ffffffff
createType="monolithicFlat"

# Extent description
RW 2048 FLAT "{target}" 0

# The Disk Data Base
#DDB
ddb.virtualHWVersion = "4"
ddb.adapterType = "ide"
"""


def flat_vmdk(path: Path, target: str = "/etc/passwd") -> Path:
    """A monolithicFlat descriptor, written by hand: its one extent is a host file."""
    path.write_text(FLAT_DESCRIPTOR.format(target=target))
    return path


def sparse_vmdk_with_flat_extent(path: Path, target: str = "/etc/passwd") -> Path:
    """A real monolithicSparse VMDK whose embedded descriptor now names a host file."""
    qemu_img("create", "-q", "-f", "vmdk", str(path), "1M")
    data = bytearray(path.read_bytes())
    start = data.index(b"# Disk DescriptorFile")
    end = data.index(b"\0", start)
    text = FLAT_DESCRIPTOR.format(target=target).replace('"monolithicFlat"',
                                                         '"monolithicSparse"').encode()
    data[start:end] = text.ljust(end - start, b"\0") if len(text) < end - start else text
    path.write_bytes(bytes(data))
    return path


def patched_qcow2(path: Path, offset: int, fmt: str, value: int) -> Path:
    make_qcow2(path, "16M", data_mb=1)
    data = bytearray(path.read_bytes())
    struct.pack_into(fmt, data, offset, value)
    path.write_bytes(bytes(data))
    return path


def cut(path: Path, size: int) -> Path:
    make_qcow2(path, "16M", data_mb=1)
    data = path.read_bytes()[:size]
    path.write_bytes(data)
    return path


def random_bytes(path: Path, size: int = 1 << 20, seed: int = 5) -> Path:
    path.write_bytes(hashlib.shake_256(str(seed).encode()).digest(size))
    return path


# name -> (builder, disk_format, words the 415 must contain)
HOSTILE: dict[str, tuple[Callable[[Path], Path], str, str]] = {
    "qcow2 backing file /etc/passwd":
        (lambda p: backing_qcow2(p, "/etc/passwd"), "qcow2", "backing file"),
    "qcow2 backing file, declared raw":
        (lambda p: backing_qcow2(p, "/etc/passwd"), "raw", "backing file"),
    "qcow2 external data file": (data_file_qcow2, "qcow2", "data_file"),
    "vmdk monolithicFlat extent /etc/passwd": (flat_vmdk, "vmdk", "safety checks"),
    "vmdk monolithicFlat, declared raw": (flat_vmdk, "raw", "safety checks"),
    "vmdk sparse, descriptor naming /etc/passwd":
        (sparse_vmdk_with_flat_extent, "vmdk", "extent"),
    "raw uploaded as qcow2": (random_bytes, "qcow2", "does not match"),
    "qcow2 uploaded as vmdk": (lambda p: make_qcow2(p, "16M", data_mb=1), "vmdk", "does not match"),
    "qcow2 claiming a 4 EiB virtual size":
        (lambda p: patched_qcow2(p, 24, ">Q", 1 << 62), "qcow2", "virtual size"),
    "qcow2 claiming cluster_bits 40":
        (lambda p: patched_qcow2(p, 20, ">I", 40), "qcow2", "cluster_bits"),
    "qcow2 truncated inside its header": (lambda p: cut(p, 64), "qcow2", "does not match"),
    "qcow2 truncated before its L1 table": (lambda p: cut(p, 128 << 10), "qcow2", "past the end"),
}


# -- upload --------------------------------------------------------------------------------

def test_hostile_images_are_refused_at_upload(shared_api, tmp_path, capsys):
    api = shared_api
    refused = []
    for n, (name, (build, disk_format, words)) in enumerate(HOSTILE.items()):
        path = build(tmp_path / f"hostile-{n}")
        image = create(api, name="hostile", disk_format=disk_format)
        resp = upload(api, image["id"], path)
        assert resp.status_code == 415, (name, resp.status_code, resp.text)
        message = resp.json()["message"]
        assert words in message, (name, message)
        after = show(api, image["id"])
        assert after["status"] == "queued", (name, after)
        for key in ("size", "checksum", "os_hash_value", "virtual_size"):
            assert after[key] is None, (name, key, after[key])
        assert after["locations"] == [] and "os_glance_blake3_blocks" not in after, (name, after)
        leftovers = [f for f in os.listdir(api.datadir) if image["id"] in f]
        assert leftovers == [], (name, leftovers)
        refused.append(name)
    # The refusal leaves the image usable: a good qcow2 goes into the last one.
    resp = upload(api, image["id"], make_qcow2(tmp_path / "good.qcow2", "16M", data_mb=1))
    assert resp.status_code == 204, resp.text
    assert show(api, image["id"])["status"] == "active"
    with capsys.disabled():
        print(f"\n[hostile images] upload: {len(HOSTILE)} tried, {len(refused)} refused with "
              "415, 0 stored")


# -- chute-compute ---------------------------------------------------------------------------


def base_of(compute, image_id: str) -> Path:
    return base_dir(compute) / base_name(image_id)


@pytest.fixture
def trap(tmp_path):
    """A directory outside every mountpoint holding a FIFO trap; both watched for opens."""
    outside = tmp_path / "outside"
    outside.mkdir()
    watch = OpenTrap()
    watch.watch(outside)
    watch.fifo(outside / "trap.fifo")
    yield watch
    watch.close()


def store_hostile(api, path: Path, disk_format: str) -> dict:
    """Into the store as Glance would: container_format ovf is not inspected at upload."""
    image = create(api, name="hostile", disk_format=disk_format, container_format="ovf")
    resp = upload(api, image["id"], path)
    assert resp.status_code == 204, resp.text
    return show(api, image["id"])


def test_compute_refuses_hostile_images_found_in_its_store(shared_api, start_compute, tmp_path,
                                                          trap, capsys):
    api, compute = shared_api, start_compute(shared_api)
    fifo = str(trap.fifos[0])
    cases = {
        "qcow2 backing file (FIFO trap)": (backing_qcow2(tmp_path / "b.qcow2", fifo), "qcow2",
                                           "backing file"),
        "vmdk descriptor naming the FIFO trap": (
            sparse_vmdk_with_flat_extent(tmp_path / "s.vmdk", fifo), "vmdk", "extent"),
        "qcow2 claiming a 4 EiB virtual size": (
            patched_qcow2(tmp_path / "a.qcow2", 24, ">Q", 1 << 62), "qcow2", "virtual size"),
    }
    for name, (path, disk_format, words) in cases.items():
        image = store_hostile(api, path, disk_format)
        server = boot_and_wait(compute, image["id"])
        assert server["status"] == "ERROR", (name, server)
        fault = server["fault"]["message"]
        assert "safety check" in fault and words in fault, (name, fault)
        base = base_of(compute, image["id"])
        assert not base.exists() and not Path(str(base) + ".part").exists(), name
        assert not (compute.instances_path / server["id"] / "disk").exists(), name
    assert trap.opened() == []
    with capsys.disabled():
        print(f"\n[hostile images] compute store: {len(cases)} booted, {len(cases)} ERROR "
              "before any qemu-img, trap opened 0 times")


def plant(base: Path, hostile: Path, info: dict | None = None) -> None:
    """Put hostile bytes where a verified base was, keeping (or writing) its `.info`."""
    base.unlink(missing_ok=True)
    data = hostile.read_bytes()
    if info is None:
        size = json.loads(Path(str(base) + ".info").read_text())["stored_size"]
        assert len(data) <= size
        data = data.ljust(size, b"\0")
    else:
        Path(str(base) + ".info").write_text(json.dumps(info))
    base.write_bytes(data)


def test_compute_rechecks_cached_bases(shared_api, start_compute, tmp_path, trap, capsys):
    api, compute = shared_api, start_compute(shared_api)
    fifo = str(trap.fifos[0])
    hostile = backing_qcow2(tmp_path / "hostile.qcow2", fifo)

    # A verified base swapped for a hostile qcow2 of the same size, its .info kept: the cache
    # re-check refuses it and fetches the image again; the hostile bytes are never used.
    good = make_qcow2(tmp_path / "good.qcow2", "16M", data_mb=1)
    image = create(api, name="hostile", disk_format="qcow2")
    assert upload(api, image["id"], good).status_code == 204
    image = show(api, image["id"])
    first = boot_and_wait(compute, image["id"])
    assert first["status"] == "ACTIVE", first.get("fault")
    base = base_of(compute, image["id"])
    plant(base, hostile)
    second = boot_and_wait(compute, image["id"])
    assert second["status"] == "ACTIVE", second.get("fault")
    assert second["chute:image_transfer"]["method"] in ("file", "http")  # not "cache"
    assert sha512_file(base) == image["os_hash_value"]
    assert f"Cached base {base} of image {image['id']} is not usable" in compute.log_text()

    # The same, but the store holds hostile bytes too (uploaded as ovf) and the planted .info
    # matches them exactly: refused in the cache, refetched, refused again -> ERROR.
    evil = store_hostile(api, hostile, "qcow2")
    evil_base = base_of(compute, evil["id"])
    want = Expected.required(Image.parse(evil))
    plant(evil_base, hostile, {
        "image_id": evil["id"], "size": want.size, "algorithm": want.algorithm,
        "digest": want.digest, "format": "qcow2", "disk_format": "qcow2",
        "stored_size": hostile.stat().st_size, "method": "file", "fetched_at": time.time()})
    third = boot_and_wait(compute, evil["id"])
    assert third["status"] == "ERROR", third
    fault = third["fault"]["message"]
    assert "safety check" in fault and "backing file" in fault, fault
    assert not evil_base.exists()
    assert not (compute.instances_path / third["id"] / "disk").exists()
    assert trap.opened() == []
    with capsys.disabled():
        print("\n[hostile images] compute cache: 2 hostile bases planted, 2 refused "
              "(1 healed by refetch, 1 ERROR), trap opened 0 times")
