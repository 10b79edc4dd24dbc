"""Server actions through the API with Nova's rules, on the fake driver (no guest needed):
which state allows which action (409 otherwise, with Nova's message), malformed and unknown
actions (400), the states a server goes through, and that they survive a restart."""

from __future__ import annotations

import pytest

from tests.helpers.images import upload_image
from tests.helpers.servers import action, boot_and_wait, console_output, wait_status
from tests.helpers.services import prepare_compute


@pytest.fixture(scope="module")
def compute(shared_api, tmp_path_factory):
    server = prepare_compute(tmp_path_factory.mktemp("compute-actions"), shared_api,
                             DEFAULT={"sync_power_state_interval": 1})
    yield server.start()
    server.kill()


@pytest.fixture(scope="module")
def image_id(shared_api):
    return upload_image(shared_api, b"\0" * 65536, name="actions")["id"]


@pytest.fixture
def active(compute, image_id):
    found = boot_and_wait(compute, image_id, name="acting")
    assert found["status"] == "ACTIVE"
    return found["id"]


def message(resp) -> str:
    (fault,) = resp.json().values()
    return str(fault["message"])


def test_stop_then_start(compute, active):
    assert action(compute, active, {"os-stop": None}).status_code == 202
    stopped = wait_status(compute, active, "SHUTOFF")
    assert stopped["OS-EXT-STS:vm_state"] == "stopped"
    assert stopped["OS-EXT-STS:power_state"] == 4
    assert action(compute, active, {"os-start": None}).status_code == 202
    started = wait_status(compute, active, "ACTIVE")
    assert started["OS-EXT-STS:power_state"] == 1
    assert "fake guest" in console_output(compute, active)


@pytest.mark.parametrize("body, status, text", [
    ({"os-start": None}, 409, "Cannot 'start' instance {id} while it is in vm_state active"),
    ({"reboot": {"type": "SIDEWAYS"}}, 400, "Invalid input for field/attribute type"),
    ({"reboot": {}}, 400, "'type' is a required property"),
    ({"reboot": None}, 400, "'type' is a required property"),
    ({"os-migrate": None}, 400, "There is no such action: os-migrate"),
    ({"os-stop": None, "os-start": None}, 400, "Malformed request body: too many body keys"),
    ({}, 400, "Malformed request body"),
    ([1], 400, "Malformed request body"),
    ({"os-getConsoleOutput": {"length": -2}}, 400, "greater than or equal to -1"),
    ({"os-getConsoleOutput": {"length": "x"}}, 400, "Invalid input for field/attribute length"),
    ({"os-getConsoleOutput": {"lines": 1}}, 400, "Additional properties are not allowed"),
    ({"os-getConsoleOutput": 3}, 400, "is not of type 'object'"),
])
def test_refused_actions(compute, active, body, status, text):
    resp = action(compute, active, body)
    assert resp.status_code == status, resp.text
    assert text.format(id=active) in message(resp)


def test_stopped_server_refuses_stop_and_soft_reboot_but_takes_a_hard_one(compute, active):
    assert action(compute, active, {"os-stop": None}).status_code == 202
    wait_status(compute, active, "SHUTOFF")
    for body in ({"os-stop": None}, {"reboot": {"type": "SOFT"}}):
        resp = action(compute, active, body)
        assert resp.status_code == 409
        assert "while it is in vm_state stopped" in message(resp)
    assert action(compute, active, {"reboot": {"type": "HARD"}}).status_code == 202
    assert wait_status(compute, active, "ACTIVE")["OS-EXT-STS:power_state"] == 1
    assert "rebooted (hard)" in console_output(compute, active, length=1)


def test_unknown_server_is_404(compute):
    resp = action(compute, "nope", {"os-stop": None})
    assert resp.status_code == 404 and "nope" in message(resp)


def test_states_survive_a_restart(shared_api, image_id, tmp_path):
    compute = prepare_compute(tmp_path, shared_api).start()
    try:
        running = boot_and_wait(compute, image_id, name="stays-up")["id"]
        stopped = boot_and_wait(compute, image_id, name="stays-down")["id"]
        assert action(compute, stopped, {"os-stop": None}).status_code == 202
        wait_status(compute, stopped, "SHUTOFF")
        compute.kill()
        compute.start()
        assert wait_status(compute, running, "ACTIVE")["OS-EXT-STS:power_state"] == 1
        assert wait_status(compute, stopped, "SHUTOFF")["OS-EXT-STS:power_state"] == 4
    finally:
        compute.kill()
