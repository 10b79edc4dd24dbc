"""A small Linux guest (Debian's kernel and busybox, booted from its own disk by syslinux)
under libvirt: it reaches a shell prompt on the serial console, and reads the config drive
the driver attaches when `<instance dir>/disk.config` exists (the contract with the config
drive's writer)."""

from __future__ import annotations

import json

from tests.guests import build
from tests.helpers.polling import wait_for
from tests.helpers.servers import (
    action,
    boot_and_wait,
    console_output,
    wait_console,
    wait_status,
)


def test_linux_guest_reaches_a_prompt_and_reads_its_config_drive(virt_compute, linux_image):
    found = boot_and_wait(virt_compute, linux_image, name="tux")
    assert found["status"] == "ACTIVE", found.get("fault")
    sid = found["id"]
    first = wait_console(virt_compute, sid, build.PROMPT, timeout=90)
    assert "chute-linux: no config drive" in first
    assert build.SHELL_READY in first

    assert action(virt_compute, sid, {"os-stop": None}).status_code == 202
    wait_status(virt_compute, sid, "SHUTOFF")
    meta = {"uuid": sid, "name": "tux", "meta": {"greeting": "hello from the config drive"}}
    build.config_drive(virt_compute.instances_path / sid / "disk.config", json.dumps(meta))
    assert action(virt_compute, sid, {"os-start": None}).status_code == 202
    wait_status(virt_compute, sid, "ACTIVE")
    wait_for(lambda: console_output(virt_compute, sid).count(build.SHELL_READY) == 2, 90,
             "the second boot's prompt")
    second_boot = console_output(virt_compute, sid).rsplit("chute-linux: kernel", 1)[1]
    assert "chute-linux: config drive" in second_boot
    assert json.dumps(meta) in second_boot
