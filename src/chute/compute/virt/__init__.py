"""Virt drivers: what turns a prepared instance disk into a running (or pretend) guest.

The interface is deliberately two calls so a real hypervisor driver fits without touching the
manager: `spawn` after the disk exists, `destroy` before the instance directory goes.
"""

from __future__ import annotations

from typing import Protocol

from chute.compute.instance import Instance


class Driver(Protocol):
    name: str

    def spawn(self, instance: Instance, disk_path: str) -> None:
        """Start the guest from `disk_path`; raise a ChuteError saying why it could not."""

    def destroy(self, instance: Instance) -> None:
        """Stop the guest if it runs; must be safe for an instance that never started."""


def load(name: str) -> Driver:
    if name == "fake":
        from chute.compute.virt.fake import FakeDriver
        return FakeDriver()
    raise ValueError(f"virt driver {name!r} is not available in this build (use fake)")
