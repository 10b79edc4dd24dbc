"""Faults around real guests: the agent killed with -9 while guests run (they keep running and
are adopted, never started twice), a delete during the build, a flavor larger than the host,
an image that does not boot, libvirtd gone at start and during a build, a KVM that cannot run
guests."""

from __future__ import annotations

import sqlite3
import subprocess

import requests

from chute.compute.virt import bootsector
from chute.compute.virt.kvmprobe import kvm_problem
from tests.helpers import libvirt as lv
from tests.helpers.images import upload_image
from tests.helpers.polling import wait_for
from tests.helpers.servers import (
    boot,
    boot_and_wait,
    console_output,
    server,
    wait_console,
    wait_status,
)
from tests.helpers.services import BIN, prepare_compute


def test_agent_killed_with_9_leaves_its_guest_running_and_adopts_it(start_virt_compute,
                                                                    marker_image):
    compute = start_virt_compute()
    sid = boot_and_wait(compute, marker_image, name="survivor")["id"]
    wait_console(compute, sid, "chute-marker boot 1")
    pid = lv.qemu_pid(sid)

    compute.kill()
    assert lv.domains_of(compute.instances_path)[sid].isActive()
    compute.start()

    found = wait_status(compute, sid, "ACTIVE")
    assert found["OS-EXT-STS:power_state"] == 1
    assert lv.qemu_pid(sid) == pid  # the same qemu: adopted, not started again
    assert f"Instance {sid}: adopted its running guest" in compute.log_text()
    assert bootsector.boots_seen(console_output(compute, sid)) == [1]


def test_agent_killed_after_spawn_before_active_adopts_the_guest_on_resume(start_virt_compute,
                                                                          marker_image):
    """The agent died between starting the guest and recording ACTIVE: the state it left is
    a building instance whose guest runs. The resumed build keeps that guest."""
    compute = start_virt_compute()
    sid = boot_and_wait(compute, marker_image, name="half-built")["id"]
    wait_console(compute, sid, "chute-marker boot 1")
    pid = lv.qemu_pid(sid)
    compute.kill()
    db = sqlite3.connect(compute.instances_path / "chute-compute.sqlite")
    with db:
        db.execute("UPDATE instances SET vm_state = 'building', task_state = 'spawning', "
                   "power_state = 0 WHERE id = ?", (sid,))
    db.close()
    compute.start()

    found = wait_status(compute, sid, "ACTIVE")
    assert found["OS-EXT-STS:power_state"] == 1
    assert lv.qemu_pid(sid) == pid
    assert f"Instance {sid}: its guest already runs; adopted, not started again" in \
        compute.log_text()
    assert bootsector.boots_seen(console_output(compute, sid)) == [1]


def test_delete_during_the_build_leaves_no_domain_and_no_disk(virt_compute, marker_image):
    sid = boot(virt_compute, marker_image, name="short-lived")["id"]
    resp = requests.delete(f"{virt_compute.url}/v2.1/servers/{sid}", timeout=30)
    assert resp.status_code == 204
    # The build thread has ended one way or another: it saw the deletion, or it had finished
    # (or failed) before the DELETE, which then destroyed the guest.
    wait_for(lambda: any(line in virt_compute.log_text() for line in (
        f"Instance {sid} was deleted during its build", f"Instance {sid} ACTIVE",
        f"Instance {sid} failed to build")),
        60, f"the build of {sid} to end")
    assert sid not in lv.domains_of(virt_compute.instances_path)
    assert not (virt_compute.instances_path / sid).exists()
    assert requests.get(f"{virt_compute.url}/v2.1/servers/{sid}", timeout=10).status_code == 404


def test_flavor_larger_than_the_host_is_no_valid_host(start_virt_compute, marker_image):
    compute = start_virt_compute(DEFAULT={"ram_allocation_ratio": 0.001})
    found = boot_and_wait(compute, marker_image, name="too-big")
    assert found["status"] == "ERROR"
    assert found["fault"]["message"].startswith("No valid host was found.")
    assert not lv.domains_of(compute.instances_path)


def test_an_image_that_does_not_boot_is_active_and_its_console_says_why(virt_compute,
                                                                        shared_api, tmp_path):
    blank = tmp_path / "blank.raw"
    blank.write_bytes(b"")
    with open(blank, "wb") as f:
        f.truncate(1 << 20)
    image = upload_image(shared_api, blank, disk_format="raw", name="blank")
    found = boot_and_wait(virt_compute, image["id"], name="dud")
    assert found["status"] == "ACTIVE"  # as Nova: chute does not judge the guest
    wait_console(virt_compute, found["id"], "No bootable device")


def test_libvirtd_unreachable_at_start_stops_the_agent_naming_the_option(libvirtd, shared_api,
                                                                        tmp_path):
    compute = prepare_compute(tmp_path, shared_api, DEFAULT={"compute_driver": "libvirt"},
                              libvirt={"virt_type": "qemu", "connection_uri":
                                       f"qemu+unix:///system?socket={tmp_path}/none"})
    proc = subprocess.run([str(BIN / "chute-compute"), "--config-file", str(compute.conf_path)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "[libvirt] connection_uri: cannot connect to qemu+unix:///system?socket=" in lines[0]


def test_libvirtd_gone_during_a_build_is_the_servers_fault(start_virt_compute, marker_image,
                                                           tmp_path):
    relay = lv.SocketRelay(tmp_path / "libvirt-sock")
    compute = start_virt_compute(libvirt={"connection_uri": relay.uri})
    relay.close()
    found = boot_and_wait(compute, marker_image, name="orphan")
    assert found["status"] == "ERROR"
    assert found["fault"]["message"].startswith(f"cannot connect to libvirt at {relay.uri} "
                                                "([libvirt] connection_uri)")


def test_virt_type_kvm_where_kvm_cannot_run_guests(start_virt_compute, marker_image, shared_api,
                                                   tmp_path):
    problem = kvm_problem()
    kvm = {"virt_type": "kvm"}
    if problem is None:  # a host whose KVM works: kvm is used
        compute = start_virt_compute(libvirt=kvm)
        sid = boot_and_wait(compute, marker_image, name="kvm")["id"]
        assert "type='kvm'" in lv.domains_of(compute.instances_path)[sid].XMLDesc()
        return
    refused = prepare_compute(tmp_path, shared_api, DEFAULT={"compute_driver": "libvirt"},
                              libvirt=kvm)
    proc = subprocess.run([str(BIN / "chute-compute"), "--config-file", str(refused.conf_path)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert "[libvirt] virt_type: kvm cannot run guests on this host" in proc.stderr
    assert "allow_virt_type_fallback = true" in proc.stderr

    compute = start_virt_compute(libvirt={**kvm, "allow_virt_type_fallback": True})
    wait_for(lambda: "virt_type = kvm cannot run guests on this host" in compute.log_text(),
             10, "the fall-back line")
    sid = boot_and_wait(compute, marker_image, name="tcg")["id"]
    assert "type='qemu'" in lv.domains_of(compute.instances_path)[sid].XMLDesc()
    wait_console(compute, sid, "chute-marker boot 1")
    assert server(compute, sid)["status"] == "ACTIVE"
