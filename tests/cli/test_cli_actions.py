"""`chute stop/start/reboot/console-log` against real services (the fake driver: its console
log records what was done to the pretend guest)."""

from __future__ import annotations

from tests.helpers.cli import assert_one_line_error, run_on
from tests.helpers.images import upload_image
from tests.helpers.servers import boot_and_wait, wait_status


def test_stop_start_reboot_and_console_log_by_name(stack):
    api, compute = stack
    image = upload_image(api, b"\0" * 65536, name="cli-actions")
    sid = boot_and_wait(compute, image["id"], name="cli-vm")["id"]

    assert run_on(stack, "stop", "cli-vm").returncode == 0
    wait_status(compute, sid, "SHUTOFF")
    assert_one_line_error(run_on(stack, "stop", "cli-vm"), "failed to stop cli-vm",
                          "while it is in vm_state stopped")
    assert run_on(stack, "start", sid).returncode == 0
    wait_status(compute, sid, "ACTIVE")
    assert run_on(stack, "reboot", "--hard", "cli-vm").returncode == 0
    wait_status(compute, sid, "ACTIVE")

    log = run_on(stack, "console-log", "cli-vm")
    assert log.returncode == 0, log.stderr
    assert log.stdout.splitlines() == [f"fake guest {sid} started",
                                       f"fake guest {sid} powered off",
                                       f"fake guest {sid} started",
                                       f"fake guest {sid} rebooted (hard)"]
    last = run_on(stack, "console-log", "--length", "1", sid)
    assert last.stdout == f"fake guest {sid} rebooted (hard)\n"
