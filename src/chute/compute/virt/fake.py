"""The default driver: disks are really made by the manager, no guest is started.

It lets every step of a boot that concerns chute (fetch, verify, cache, disk creation, state
machine) run for real on hosts without KVM, and in tests.
"""

from __future__ import annotations

import logging
import os

from chute.compute.instance import Instance
from chute.errors import ComputeError

LOG = logging.getLogger(__name__)


class FakeDriver:
    name = "fake"

    def spawn(self, instance: Instance, disk_path: str) -> None:
        # Even a pretend guest needs its disk: catch a manager bug here, not at the first real boot.
        if not os.path.isfile(disk_path):
            raise ComputeError(f"instance disk {disk_path} does not exist")
        LOG.info("Instance %s spawned (fake driver, disk %s)", instance.id, disk_path)

    def destroy(self, instance: Instance) -> None:
        LOG.info("Instance %s destroyed (fake driver)", instance.id)
