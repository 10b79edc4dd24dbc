"""A boot whose image arrives as a clone (store and `_base` on one XFS with reflink=1): the
instance's disk is made while the clone is verified, and the guest is started only after.

The order is read from the agent's own log, in which each step writes one line: the disk
("Created qcow2 disk"), the verified copy ("Successfully transferred using file") and the
guest ("Instance <id> spawned", the fake driver).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.digests import base_name
from tests.helpers.disks import make_qcow2, qemu_info
from tests.helpers.images import upload_image
from tests.helpers.servers import boot_and_wait
from tests.helpers.services import ApiServer, ComputeServer, prepare_api, prepare_compute

MiB = 1 << 20


@pytest.fixture(scope="module")
def on_xfs(xfs_reflink: Path) -> Iterator[tuple[ApiServer, ComputeServer]]:
    """chute-api and chute-compute whose store and instances are on one reflink XFS."""
    root = xfs_reflink / "clone-boot"
    for part in ("api", "compute"):
        (root / part).mkdir(parents=True)
    api = prepare_api(root / "api").start()
    compute = prepare_compute(root / "compute", api)
    try:
        yield api, compute.start()
    finally:
        compute.stop()
        api.stop()


def image_bytes() -> bytes:
    """9 MiB: random data, a hole-sized run of zeros, more data (three 4 MiB blocks)."""
    return os.urandom(3 * MiB) + bytes(4 * MiB) + os.urandom(2 * MiB)


def line_of(log: str, text: str) -> int:
    """Index of the first log line containing `text` (fails the test when there is none)."""
    found = [n for n, line in enumerate(log.splitlines()) if text in line]
    assert found, f"no log line has {text!r}"
    return found[0]


def test_the_disk_is_made_while_the_clone_is_verified_and_the_guest_started_after(on_xfs):
    api, compute = on_xfs
    data = image_bytes()
    image = upload_image(api, data)
    mark = len(compute.log_text())

    server = boot_and_wait(compute, image["id"], flavor="1")

    assert server["status"] == "ACTIVE", server.get("fault")
    assert server["chute:image_transfer"]["primitive"] == "clone"
    log = compute.log_text()[mark:]
    disk = compute.instances_path / server["id"] / "disk"
    made = line_of(log, f"Created qcow2 disk {disk}")
    verified = line_of(log, "Successfully transferred using file")
    spawned = line_of(log, f"Instance {server['id']} spawned")
    assert made < verified < spawned
    base = compute.instances_path / "_base"
    backing = qemu_info(disk)["backing-filename"]
    assert Path(backing).parent == base and Path(backing).read_bytes() == data
    assert Path(f"{backing}.info").exists() and not list(base.glob("*.info.tmp"))


def test_a_corrupted_source_is_refused_though_its_disk_was_made_meanwhile(on_xfs):
    api, compute = on_xfs
    image = upload_image(api, image_bytes())
    stored = api.datadir / image["id"]
    with open(stored, "r+b") as handle:  # same size, other bytes: only the digest can tell
        handle.seek(MiB)
        handle.write(b"not the uploaded bytes")
    mark = len(compute.log_text())

    server = boot_and_wait(compute, image["id"], flavor="1")

    assert server["status"] == "ERROR"
    assert "image data does not match its checksum" in server["fault"]["message"]
    log = compute.log_text()[mark:]
    line_of(log, f"Created qcow2 disk {compute.instances_path / server['id'] / 'disk'}")
    assert f"Instance {server['id']} spawned" not in log
    assert "Successfully transferred" not in log
    assert not (compute.instances_path / server["id"]).exists()  # the disk made meanwhile
    name = base_name(image["id"])
    assert sorted(p.name for p in (compute.instances_path / "_base").glob(f"{name}*")) == [
        f"{name}.lock"]  # no base, no .info, no .info.tmp, no .part


def test_corrupted_bytes_are_refused_as_such_though_the_disk_made_meanwhile_failed(
        on_xfs, tmp_path):
    """The store's qcow2 header rewritten to claim 100 GiB: the disk made during the
    verification is refused for the flavor, but the bytes failed their check, and that is
    the fault: an error of the work beside a verification counts only for good bytes."""
    api, compute = on_xfs
    image = upload_image(api, make_qcow2(tmp_path / "small.qcow2", "64M", data_mb=1),
                         disk_format="qcow2")
    with open(api.datadir / image["id"], "r+b") as handle:
        handle.seek(24)  # the qcow2 header's virtual size, big-endian
        handle.write((100 << 30).to_bytes(8, "big"))
    mark = len(compute.log_text())

    server = boot_and_wait(compute, image["id"], flavor="1")

    assert server["status"] == "ERROR"
    assert "image data does not match its checksum" in server["fault"]["message"]
    assert "Flavor's disk is too small" not in server["fault"]["message"]
    log = compute.log_text()[mark:]
    line_of(log, "does not match the image")  # the clone's mismatch, before HTTP's
    assert f"Instance {server['id']} spawned" not in log
    assert not (compute.instances_path / server["id"]).exists()
