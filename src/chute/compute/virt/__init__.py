"""Virt drivers: what turns a prepared instance disk into a running (or pretend) guest.

The manager calls `spawn` after the disk exists and `destroy` before the instance directory
goes; the server actions (compute/actions.py) call the power operations; the power-state sync
(compute/powersync.py) asks what runs (`guests`) and hears of changes (`init_host`'s callback).
A driver keeps no state the host does not keep: after a restart it finds its guests again.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from chute.compute.instance import Instance

DRIVERS = ("fake", "libvirt")
CONSOLE_LOG = "console.log"  # in the instance directory, as Nova's libvirt driver
CONFIG_DRIVE = "disk.config"  # an ISO 9660 config drive, attached read-only when present


@dataclass(frozen=True)
class VirtSettings:
    """What a driver needs: [DEFAULT] compute_driver, instances_path and the [libvirt] options.
    `virt_type` is the one in effect (kvm, or qemu after an allowed fall-back)."""

    compute_driver: str
    instances_path: str
    virt_type: str = "qemu"
    connection_uri: str = "qemu:///system"
    allow_virt_type_fallback: bool = False
    wait_soft_reboot_seconds: int = 120
    fake_spawn_seconds: float = 0.0  # [fake] spawn_seconds


@dataclass(frozen=True)
class HostResources:
    vcpus: int
    memory_mb: int


class Driver(Protocol):
    name: str

    def init_host(self, on_change: Callable[[str], None]) -> None:
        """Connect; from now on call `on_change(instance_id)` when a guest's power state
        changes on its own (it powered off, its qemu died)."""

    def host_resources(self) -> HostResources:
        """What this host has for guests (Nova's resource tracker reads the same)."""

    def spawn(self, instance: Instance, disk_path: str) -> None:
        """Start the guest from `disk_path`; raise a ChuteError saying why it could not.
        A guest already running for this instance is kept, never started twice."""

    def destroy(self, instance: Instance) -> None:
        """Stop and forget the guest; safe for an instance that never started."""

    def power_off(self, instance: Instance, timeout: int) -> None:
        """Ask the guest to shut down, wait up to `timeout` seconds, then pull the plug."""

    def power_on(self, instance: Instance) -> None:
        """Start the guest again from its instance directory."""

    def reboot(self, instance: Instance, hard: bool) -> None:
        """SOFT: ask the guest, then hard if it does not comply; HARD: reset from outside."""

    def power_state(self, instance_id: str) -> int:
        """The guest's power state (instance.RUNNING, SHUTDOWN, ...), NOSTATE if none."""

    def guests(self) -> dict[str, int]:
        """This host's guests (of this instances_path) by instance id, with power states."""

    def console_output(self, instance: Instance) -> str:
        """What the guest wrote to its serial console, oldest first."""


def load(settings: VirtSettings) -> Driver:
    if settings.compute_driver == "fake":
        from chute.compute.virt.fake import FakeDriver
        return FakeDriver(settings)
    if settings.compute_driver == "libvirt":
        from chute.compute.virt.libvirt import LibvirtDriver
        return LibvirtDriver(settings)
    raise ValueError(f"virt driver {settings.compute_driver!r} is not one of "
                     f"{', '.join(DRIVERS)}")
