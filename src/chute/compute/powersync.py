"""Keeping vm_state and power_state true to what the hypervisor says, as Nova's
`_sync_power_states` does, and finding the guests again after the agent restarts.

Three ways in: `adopt` at start (a killed agent left its guests running: they are recorded,
never started twice), `changed` when the driver reports an event (a guest powered itself off,
its qemu died), and the periodic `sync_all` for whatever an event missed. The rules
(nova/compute/manager.py `_sync_instance_power_state`), applied only to an instance no action
is working on (task_state None):

    vm_state active,  guest shut down / crashed / gone   ->  stopped (SHUTOFF), guest off
    vm_state stopped, guest running                      ->  guest powered off again
    any other state                                      ->  power_state recorded
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

from chute.compute.instance import (
    ACTIVE,
    CRASHED,
    NOSTATE,
    RUNNING,
    SHUTDOWN,
    STOPPED,
    Instance,
)

if TYPE_CHECKING:
    from chute.compute.manager import ComputeManager

LOG = logging.getLogger(__name__)
NOT_RUNNING = (SHUTDOWN, CRASHED, NOSTATE)


class PowerSync:
    def __init__(self, manager: ComputeManager) -> None:
        self.manager = manager
        self.driver = manager.driver

    def adopt(self) -> None:
        """At start: every instance meets its guest again; an action cut short by the
        restart is forgotten (its guest is wherever it got to, and the sync records it)."""
        guests = self.driver.guests()
        known = set()
        for inst in self.manager.db.list():
            known.add(inst.id)
            if inst.vm_state not in (ACTIVE, STOPPED):
                continue
            if inst.task_state is not None:
                LOG.info("Instance %s: task %s interrupted by a restart", inst.id,
                         inst.task_state)
                inst.task_state = None
                self.manager.save(inst, missing_ok=True)
            state = guests.get(inst.id, NOSTATE)
            if state == RUNNING:
                LOG.info("Instance %s: adopted its running guest", inst.id)
            self.sync_one(inst.id, state)
        for orphan in sorted(set(guests) - known):
            LOG.warning("Guest %s has no instance on this host; left alone", orphan)

    def changed(self, instance_id: str) -> None:
        """A driver event: sync this instance on a worker (never on the event thread)."""
        self.manager.submit(lambda: self.sync_one(instance_id))

    def sync_all(self) -> None:
        guests = self.driver.guests()
        for inst in self.manager.db.list():
            if inst.vm_state in (ACTIVE, STOPPED):
                self.sync_one(inst.id, guests.get(inst.id, NOSTATE))

    def sync_one(self, instance_id: str, state: int | None = None) -> None:
        # The actions' state lock too: an action accepted meanwhile is never overwritten.
        with self.manager.lock(instance_id), self.manager.server_actions.states:
            inst = self.manager.db.get(instance_id)
            if inst is None or inst.task_state is not None:
                return
            if state is None or state != self.driver.power_state(instance_id):
                state = self.driver.power_state(instance_id)
            self._apply(inst, state)

    def _apply(self, inst: Instance, state: int) -> None:
        if inst.vm_state == ACTIVE and state in NOT_RUNNING:
            LOG.warning("Instance %s is not running (power state %d): now stopped", inst.id,
                        state)
            self.driver.power_off(inst, 0)  # a crashed guest is cleared, a gone one is a no-op
            inst.vm_state = STOPPED
        elif inst.vm_state == STOPPED and state == RUNNING:
            LOG.warning("Instance %s is stopped but its guest runs: powering it off", inst.id)
            self.driver.power_off(inst, 0)
            state = self.driver.power_state(inst.id)
        elif inst.power_state == state:
            return
        inst.power_state = state
        self.manager.save(inst, missing_ok=True)

    def loop(self, interval: int, stop: threading.Event) -> None:
        while not stop.wait(interval):
            try:
                self.sync_all()
            except Exception:  # the next pass may succeed (libvirtd restarting)
                LOG.exception("Power state sync failed")
