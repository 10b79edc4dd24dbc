"""Real guests under libvirt (qemu/TCG): the marker guest boots from its overlay, prints on
the serial console that virtlogd writes to the instance directory, and counts its boots on
its own disk, never on the cached base."""

from __future__ import annotations

import hashlib
import subprocess

import requests

from chute.compute.virt import bootsector
from tests.helpers import libvirt as lv
from tests.helpers.digests import base_name
from tests.helpers.servers import (
    action,
    boot_and_wait,
    console_output,
    wait_console,
    wait_status,
)


def counter_of(path, fmt: str) -> int:
    """The marker's boot counter: the first byte of the disk's second sector."""
    out = subprocess.run(["qemu-io", "-r", "-f", fmt, "-c", "read -v 512 1", str(path)],
                         capture_output=True, text=True, check=True).stdout
    return int(out.split(":", 1)[1].split()[0], 16)


def test_marker_guest_boots_from_its_overlay_and_leaves_the_base_alone(virt_compute,
                                                                      marker_image):
    server = boot_and_wait(virt_compute, marker_image, name="marker")
    assert server["status"] == "ACTIVE", server.get("fault")
    assert server["OS-EXT-STS:power_state"] == 1
    sid = server["id"]
    output = wait_console(virt_compute, sid, "chute-marker boot 1")
    assert "Booting from Hard Disk" in output  # SeaBIOS on the serial console too

    dom = lv.domains_of(virt_compute.instances_path)[sid]
    assert dom.name() == sid and dom.isActive()
    instance_dir = virt_compute.instances_path / sid
    assert "chute-marker boot 1" in (instance_dir / "console.log").read_text()

    assert action(virt_compute, sid, {"os-stop": None}).status_code == 202
    stopped = wait_status(virt_compute, sid, "SHUTOFF")
    assert stopped["OS-EXT-STS:power_state"] == 4 and not dom.isActive()
    base = virt_compute.instances_path / "_base" / base_name(marker_image)
    assert counter_of(instance_dir / "disk", "qcow2") == 1
    assert counter_of(base, "raw") == 0
    assert hashlib.sha256(base.read_bytes()[:512]).digest() == \
        hashlib.sha256(bootsector.boot_sector()).digest()


def test_delete_destroys_the_domain_and_its_disks_and_keeps_the_base(virt_compute,
                                                                     marker_image):
    sid = boot_and_wait(virt_compute, marker_image, name="doomed")["id"]
    wait_console(virt_compute, sid, "chute-marker boot 1")
    pid = lv.qemu_pid(sid)

    resp = requests.delete(f"{virt_compute.url}/v2.1/servers/{sid}", timeout=30)
    assert resp.status_code == 204
    assert sid not in lv.domains_of(virt_compute.instances_path)
    assert not (virt_compute.instances_path / sid).exists()
    assert (virt_compute.instances_path / "_base" / base_name(marker_image)).is_file()
    assert not _alive(pid)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return b"qemu" in f.read()
    except FileNotFoundError:
        return False


def test_console_output_length_is_the_last_lines(virt_compute, marker_image):
    sid = boot_and_wait(virt_compute, marker_image, name="tail")["id"]
    full = wait_console(virt_compute, sid, "chute-marker boot 1")
    assert console_output(virt_compute, sid, length=1).strip() == "chute-marker boot 1"
    assert console_output(virt_compute, sid, length="-1") == full
    assert console_output(virt_compute, sid, length=0) == ""


def test_images_type_raw_boots_from_a_full_copy(start_virt_compute, marker_image):
    compute = start_virt_compute(libvirt={"images_type": "raw"})
    sid = boot_and_wait(compute, marker_image, name="flat")["id"]
    wait_console(compute, sid, "chute-marker boot 1")
    xml = lv.domains_of(compute.instances_path)[sid].XMLDesc()
    assert "type='raw'" in xml and str(compute.instances_path / sid / "disk") in xml
    base = compute.instances_path / "_base" / base_name(marker_image)
    assert counter_of(base, "raw") == 0
