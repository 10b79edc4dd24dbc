"""A small Linux guest (Debian's kernel and busybox, booted from its own disk by syslinux)
under libvirt: it reaches a shell prompt on the serial console, shuts down cleanly when asked
(ACPI: os-stop and a SOFT reboot never need to pull the plug), and reads the config drive the
driver attaches when `<instance dir>/disk.config` exists (the contract with the config
drive's writer)."""

from __future__ import annotations

import json
import time

from tests.guests import build
from tests.helpers.polling import wait_for
from tests.helpers.servers import (
    action,
    boot_body,
    console_output,
    nova,
    wait_built,
    wait_console,
    wait_status,
)


def prompts(compute, sid) -> int:
    return console_output(compute, sid).count(build.SHELL_READY)


def test_linux_guest_reaches_a_prompt_stops_cleanly_and_reads_its_config_drive(
        start_virt_compute, linux_image):
    compute = start_virt_compute(DEFAULT={"shutdown_timeout": 60},
                                 libvirt={"wait_soft_reboot_seconds": 60})
    # networks "none": no port, so no config drive until the test writes one.
    resp = nova(compute, "POST", "/servers", json=boot_body(linux_image, "tux"))
    found = wait_built(compute, resp.json()["server"]["id"])
    assert found["status"] == "ACTIVE", found.get("fault")
    sid = found["id"]
    first = wait_console(compute, sid, build.PROMPT, timeout=90)
    assert "chute-linux: no config drive" in first
    assert build.SHELL_READY in first

    assert action(compute, sid, {"reboot": {"type": "SOFT"}}).status_code == 202
    wait_for(lambda: prompts(compute, sid) == 2, 90, "the prompt after the SOFT reboot")
    assert f"Instance {sid} soft rebooted" in compute.log_text()

    assert action(compute, sid, {"os-stop": None}).status_code == 202
    # While the guest shuts down, another action is refused at once, not after the stop.
    started = time.monotonic()
    busy = action(compute, sid, {"reboot": {"type": "HARD"}})
    assert busy.status_code == 409 and time.monotonic() - started < 2
    assert f"Cannot 'reboot' instance {sid} while it is in task_state powering-off" in busy.text
    wait_status(compute, sid, "SHUTOFF", timeout=60)
    assert console_output(compute, sid).count(build.POWERING_OFF) == 2
    assert f"Instance {sid} shut down cleanly" in compute.log_text()

    meta = {"uuid": sid, "name": "tux", "meta": {"greeting": "hello from the config drive"}}
    build.config_drive(compute.instances_path / sid / "disk.config", json.dumps(meta))
    assert action(compute, sid, {"os-start": None}).status_code == 202
    wait_status(compute, sid, "ACTIVE")
    wait_for(lambda: prompts(compute, sid) == 3, 90, "the third boot's prompt")
    third_boot = console_output(compute, sid).rsplit("chute-linux: kernel", 1)[1]
    assert "chute-linux: config drive" in third_boot
    assert json.dumps(meta) in third_boot
