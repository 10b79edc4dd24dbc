"""The fake driver: disks are really made by the manager, no guest is started.

It lets every step of a boot that concerns chute (fetch, verify, cache, disk creation, state
machine, server actions) run for real on hosts without a hypervisor, and in tests. The pretend
guest's power state is a file in its instance directory, so it survives an agent restart as a
real guest would, and its console log says what was done to it.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

from chute.compute.instance import NOSTATE, RUNNING, SHUTDOWN, Instance
from chute.compute.virt import CONSOLE_LOG, HostResources, VirtSettings
from chute.errors import ComputeError

LOG = logging.getLogger(__name__)
STATE_FILE = "fake-power-state"


class FakeDriver:
    name = "fake"

    def __init__(self, settings: VirtSettings) -> None:
        self.instances_path = Path(settings.instances_path)
        self.spawn_seconds = settings.fake_spawn_seconds

    def init_host(self, on_change: Callable[[str], None]) -> None:
        """A pretend guest never changes on its own: nothing to listen to."""

    def host_resources(self) -> HostResources:
        """Pretend guests use nothing: a host as large as Nova's fake driver reports, so
        only an allocation ratio set for the purpose refuses a flavor."""
        return HostResources(vcpus=1000, memory_mb=800000)

    def spawn(self, instance: Instance, disk_path: str) -> None:
        # Even a pretend guest needs its disk: catch a manager bug here, not at the first real boot.
        if not os.path.isfile(disk_path):
            raise ComputeError(f"instance disk {disk_path} does not exist")
        if self.spawn_seconds:
            time.sleep(self.spawn_seconds)
        self._set(instance.id, RUNNING, "started")
        LOG.info("Instance %s spawned (fake driver, disk %s)", instance.id, disk_path)

    def destroy(self, instance: Instance) -> None:
        (self.instances_path / instance.id / STATE_FILE).unlink(missing_ok=True)
        LOG.info("Instance %s destroyed (fake driver)", instance.id)

    def power_off(self, instance: Instance, timeout: int) -> None:
        self._set(instance.id, SHUTDOWN, "powered off")

    def power_on(self, instance: Instance) -> None:
        self._set(instance.id, RUNNING, "started")

    def reboot(self, instance: Instance, hard: bool) -> None:
        self._set(instance.id, RUNNING, "rebooted (hard)" if hard else "rebooted (soft)")

    def power_state(self, instance_id: str) -> int:
        try:
            return int((self.instances_path / instance_id / STATE_FILE).read_text())
        except (OSError, ValueError):
            return NOSTATE

    def guests(self) -> dict[str, int]:
        found = {}
        for state in self.instances_path.glob(f"*/{STATE_FILE}"):
            found[state.parent.name] = self.power_state(state.parent.name)
        return found

    def console_output(self, instance: Instance) -> str:
        try:
            return (self.instances_path / instance.id / CONSOLE_LOG).read_text()
        except FileNotFoundError:
            return ""

    def _set(self, instance_id: str, power_state: int, event: str) -> None:
        directory = self.instances_path / instance_id
        (directory / STATE_FILE).write_text(str(power_state))
        with open(directory / CONSOLE_LOG, "a", encoding="utf-8") as log:
            log.write(f"fake guest {instance_id} {event}\n")
