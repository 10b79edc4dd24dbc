"""Server actions and power states on real guests (qemu/TCG), with Nova's rules: stop and
start, SOFT and HARD reboot, a guest that powers itself off, a qemu killed with -9."""

from __future__ import annotations

import os
import signal

from chute.compute.virt import bootsector
from tests.helpers import libvirt as lv
from tests.helpers.servers import (
    action,
    boot_and_wait,
    console_output,
    wait_console,
    wait_status,
)


def boots(compute, sid) -> list[int]:
    return bootsector.boots_seen(console_output(compute, sid))


def test_stop_start_and_reboots_follow_novas_states(virt_compute, marker_image):
    sid = boot_and_wait(virt_compute, marker_image, name="cycle")["id"]
    wait_console(virt_compute, sid, "chute-marker boot 1")

    assert action(virt_compute, sid, {"os-stop": None}).status_code == 202
    stopped = wait_status(virt_compute, sid, "SHUTOFF")
    assert (stopped["OS-EXT-STS:vm_state"], stopped["OS-EXT-STS:power_state"]) == ("stopped", 4)
    again = action(virt_compute, sid, {"os-stop": None})
    assert again.status_code == 409
    assert again.json()["conflictingRequest"]["message"] == \
        f"Cannot 'stop' instance {sid} while it is in vm_state stopped"
    soft = action(virt_compute, sid, {"reboot": {"type": "SOFT"}})
    assert soft.status_code == 409 and "vm_state stopped" in soft.text

    assert action(virt_compute, sid, {"os-start": None}).status_code == 202
    started = wait_status(virt_compute, sid, "ACTIVE")
    assert started["OS-EXT-STS:power_state"] == 1
    wait_console(virt_compute, sid, "chute-marker boot 2")  # the same disk, booted again
    assert action(virt_compute, sid, {"os-start": None}).status_code == 409

    assert action(virt_compute, sid, {"reboot": {"type": "HARD"}}).status_code == 202
    wait_status(virt_compute, sid, "ACTIVE")
    wait_console(virt_compute, sid, "chute-marker boot 3")
    # The marker ignores ACPI: after wait_soft_reboot_seconds the SOFT reboot goes HARD.
    assert action(virt_compute, sid, {"reboot": {"type": "soft"}}).status_code == 202
    wait_status(virt_compute, sid, "ACTIVE")
    wait_console(virt_compute, sid, "chute-marker boot 4")
    assert boots(virt_compute, sid) == [1, 2, 3, 4]
    assert "did not shut down within 1 s; rebooting hard" in virt_compute.log_text()


def test_a_guest_that_powers_itself_off_becomes_shutoff(virt_compute, poweroff_image):
    sid = boot_and_wait(virt_compute, poweroff_image, name="quitter")["id"]
    stopped = wait_status(virt_compute, sid, "SHUTOFF")
    assert stopped["OS-EXT-STS:power_state"] == 4
    assert boots(virt_compute, sid) == [1]
    assert action(virt_compute, sid, {"os-start": None}).status_code == 202
    wait_console(virt_compute, sid, "chute-marker boot 2")
    wait_status(virt_compute, sid, "SHUTOFF")


def test_kill_9_of_qemu_makes_the_server_shutoff_and_start_boots_it_again(virt_compute,
                                                                          marker_image):
    sid = boot_and_wait(virt_compute, marker_image, name="victim")["id"]
    wait_console(virt_compute, sid, "chute-marker boot 1")
    os.kill(lv.qemu_pid(sid), signal.SIGKILL)

    stopped = wait_status(virt_compute, sid, "SHUTOFF")
    assert stopped["OS-EXT-STS:vm_state"] == "stopped"
    assert f"Instance {sid} is not running" in virt_compute.log_text()
    assert action(virt_compute, sid, {"os-start": None}).status_code == 202
    wait_status(virt_compute, sid, "ACTIVE")
    wait_console(virt_compute, sid, "chute-marker boot 2")
