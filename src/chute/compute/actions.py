"""Server actions (`POST /servers/{id}/action`) with Nova's rules, over the virt driver.

Each action is checked against the instance's state first, as Nova's `check_instance_state`
does (409 `Cannot 'stop' instance U while it is in vm_state stopped`), then marked with its
task_state (`powering-off`, `rebooting_hard`, ...) and answered 202; a build worker does the
work under the instance lock, so it is ordered against DELETE and the power-state sync. The
check and the mark take only a short lock of their own: a request never waits for a guest that
takes `shutdown_timeout` seconds to stop (it gets its 409 at once).

    action                allowed when (vm_state / task_state)     ends in
    os-stop               active, error / None                     stopped, SHUTDOWN
    os-start              stopped / None                           active, RUNNING
    reboot SOFT           active / None                            active, RUNNING
    reboot HARD           active, stopped, error / None or a       active, RUNNING
                          reboot in progress
    os-getConsoleOutput   any but building                         (answered at once)
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Collection
from typing import TYPE_CHECKING, Any

from chute.compute.instance import (
    ACTIVE,
    BUILDING,
    ERROR,
    POWERING_OFF,
    POWERING_ON,
    REBOOTING,
    REBOOTING_HARD,
    STOPPED,
    Instance,
)
from chute.errors import BadComputeRequest, ChuteError, InstanceInvalidState

if TYPE_CHECKING:
    from chute.compute.manager import ComputeManager

LOG = logging.getLogger(__name__)
REBOOT_TYPES = ("SOFT", "HARD")


class ServerActions:
    def __init__(self, manager: ComputeManager) -> None:
        self.manager = manager
        self.driver = manager.driver
        self.states = threading.Lock()  # every read-modify-write of task_state holds it
        self._actions: dict[str, Callable[[str, Any], dict[str, Any] | None]] = {
            "os-stop": self.stop, "os-start": self.start, "reboot": self.reboot,
            "os-getConsoleOutput": self.console_output,
        }

    def perform(self, instance_id: str, body: object) -> dict[str, Any] | None:
        """Run the action the body names; its answer, or None for a 202 without a body."""
        self.manager.get(instance_id)  # 404 before any body error, as Nova
        if not isinstance(body, dict) or not body:
            raise BadComputeRequest("Malformed request body")
        if len(body) != 1:
            raise BadComputeRequest("Malformed request body: too many body keys")
        ((name, value),) = body.items()
        action = self._actions.get(name)
        if action is None:
            raise BadComputeRequest(f"There is no such action: {name}")
        return action(instance_id, value)

    # -- the actions --------------------------------------------------------------------------

    def stop(self, instance_id: str, _value: Any) -> None:
        self._begin(instance_id, "stop", (ACTIVE, ERROR), (None,), POWERING_OFF, self._stop)

    def start(self, instance_id: str, _value: Any) -> None:
        self._begin(instance_id, "start", (STOPPED,), (None,), POWERING_ON, self._start)

    def reboot(self, instance_id: str, value: Any) -> None:
        if not isinstance(value, dict) or "type" not in value:
            raise BadComputeRequest("Invalid input for field/attribute reboot. Value: "
                                    f"{value!r}. 'type' is a required property")
        kind = value["type"]
        if not isinstance(kind, str) or kind.upper() not in REBOOT_TYPES:
            raise BadComputeRequest(f"Invalid input for field/attribute type. Value: {kind!r}."
                                    " It is not one of SOFT, HARD")
        if kind.upper() == "HARD":
            self._begin(instance_id, "reboot", (ACTIVE, STOPPED, ERROR),
                        (None, REBOOTING, REBOOTING_HARD), REBOOTING_HARD, self._reboot_hard)
        else:
            self._begin(instance_id, "reboot", (ACTIVE,), (None,), REBOOTING,
                        self._reboot_soft)

    def console_output(self, instance_id: str, value: Any) -> dict[str, Any]:
        length = _console_length(value)
        inst = self.manager.get(instance_id)
        if inst.vm_state == BUILDING:
            raise InstanceInvalidState(f"Instance {instance_id} is not ready.")
        output = self.driver.console_output(inst)
        if length is not None and length >= 0:
            output = "".join(output.splitlines(keepends=True)[-length:]) if length else ""
        return {"output": output}

    # -- the work, on a worker ----------------------------------------------------------------

    def _stop(self, inst: Instance) -> None:
        self.driver.power_off(inst, self.manager.settings.shutdown_timeout)
        inst.vm_state = STOPPED

    def _start(self, inst: Instance) -> None:
        self.driver.power_on(inst)
        inst.vm_state = ACTIVE

    def _reboot_soft(self, inst: Instance) -> None:
        self.driver.reboot(inst, hard=False)

    def _reboot_hard(self, inst: Instance) -> None:
        self.driver.reboot(inst, hard=True)
        inst.vm_state = ACTIVE

    # -- helpers ------------------------------------------------------------------------------

    def _begin(self, instance_id: str, action: str, vm_states: Collection[str],
               task_states: Collection[str | None], task_state: str,
               work: Callable[[Instance], None]) -> None:
        with self.states:
            inst = self.manager.get(instance_id)
            if inst.vm_state not in vm_states:
                raise _invalid(action, inst, "vm_state", inst.vm_state)
            if inst.task_state not in task_states:
                raise _invalid(action, inst, "task_state", inst.task_state)
            inst.task_state = task_state
            self.manager.save(inst)
            # os-instance-actions: begun now, by this request (its id); closed by _run.
            self.manager.actions.start(instance_id, action, project_id=inst.project_id or "")
        LOG.info("Instance %s: %s accepted", instance_id, task_state)
        self.manager.submit(lambda: self._run(instance_id, action, task_state, work))

    def _run(self, instance_id: str, action: str, task_state: str,
             work: Callable[[Instance], None]) -> None:
        error: str | None = "interrupted"
        try:
            error = self._work(instance_id, task_state, work)
        finally:
            self.manager.actions.finish(instance_id, action, error=error)

    def _work(self, instance_id: str, task_state: str, work: Callable[[Instance], None]
              ) -> str | None:
        """Do `work` under the instance lock; what went wrong, or None."""
        error: str | None = None
        with self.manager.lock(instance_id):
            inst = self.manager.db.get(instance_id)
            if inst is None or inst.task_state != task_state:
                return "superseded"  # deleted meanwhile, or a hard reboot took over a soft one
            try:
                work(inst)
                LOG.info("Instance %s: %s done", instance_id, task_state)
            except ChuteError as exc:
                error = exc.message
                LOG.error("Instance %s: %s failed: %s", instance_id, task_state, exc.message)
            except Exception:  # the task state must be cleared whatever happened
                error = "unexpected error"
                LOG.exception("Instance %s: %s failed", instance_id, task_state)
            power_state = self.driver.power_state(instance_id)
            with self.states:
                current = self.manager.db.get(instance_id)
                if current is None or current.task_state != task_state:
                    return error  # deleted, or a hard reboot took over: it records the end
                current.vm_state, current.task_state = inst.vm_state, None
                current.power_state = power_state
                self.manager.save(current, missing_ok=True)
        return error


def _invalid(action: str, inst: Instance, attr: str, state: str | None) -> InstanceInvalidState:
    # nova/api/openstack/common.py raise_http_conflict_for_instance_invalid_state
    return InstanceInvalidState(f"Cannot '{action}' instance {inst.id} while it is in "
                                f"{attr} {state}")


def _console_length(value: Any) -> int | None:
    """Nova's schema: `{"length": N}` with N an integer (or a string of one) >= -1, or null;
    -1 and null mean everything."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise BadComputeRequest("Invalid input for field/attribute os-getConsoleOutput. "
                                f"Value: {value!r}. {value!r} is not of type 'object'")
    unknown = set(value) - {"length"}
    if unknown:
        raise BadComputeRequest("Additional properties are not allowed "
                                f"({', '.join(sorted(map(repr, unknown)))} unexpected)")
    length = value.get("length")
    if length is None:
        return None
    if isinstance(length, str) and length.strip().lstrip("-").isdigit():
        length = int(length)
    if not isinstance(length, int) or isinstance(length, bool) or length < -1:
        raise BadComputeRequest(f"Invalid input for field/attribute length. Value: {length!r}."
                                " An integer greater than or equal to -1 is required")
    return length
