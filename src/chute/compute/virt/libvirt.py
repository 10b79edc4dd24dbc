"""compute_driver = libvirt: guests run by libvirtd, as Nova, oVirt and KubeVirt run theirs.

libvirtd supervises qemu, keeps guests running while the agent restarts, writes their serial
consoles through virtlogd and reports lifecycle events; chute asks it through libvirt-python
(the bindings libvirt itself maintains). Domains are persistent (defined, then started), so a
guest that stops stays known to libvirt and `os-start` starts it again, and a restarted agent
finds its guests by listing domains (their uuids are the instance ids).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import libvirt

from chute.compute import flavors
from chute.compute.instance import (
    CRASHED,
    NOSTATE,
    PAUSED,
    RUNNING,
    SHUTDOWN,
    SUSPENDED,
    Instance,
)
from chute.compute.virt import CONSOLE_LOG, HostResources, VirtSettings, domain
from chute.errors import ComputeError, HypervisorUnavailable

LOG = logging.getLogger(__name__)

# nova/virt/libvirt/driver.py LIBVIRT_POWER_STATE
POWER_STATE = {
    libvirt.VIR_DOMAIN_NOSTATE: NOSTATE,
    libvirt.VIR_DOMAIN_RUNNING: RUNNING,
    libvirt.VIR_DOMAIN_BLOCKED: RUNNING,
    libvirt.VIR_DOMAIN_PAUSED: PAUSED,
    libvirt.VIR_DOMAIN_SHUTDOWN: SHUTDOWN,
    libvirt.VIR_DOMAIN_SHUTOFF: SHUTDOWN,
    libvirt.VIR_DOMAIN_CRASHED: CRASHED,
    libvirt.VIR_DOMAIN_PMSUSPENDED: SUSPENDED,
}
MAX_CONSOLE_BYTES = 100 * 1024  # Nova's libvirt driver returns at most the last 100 KiB
POLL_SECONDS = 0.2  # while waiting for a guest to shut down
# Nova's [compute] shutdown_retry_interval: the ACPI press is sent again this often, for a
# guest that was still starting its ACPI daemon when the first one came (and lost it).
SHUTDOWN_RETRY_SECONDS = 10

_event_loop_started = False
_event_loop_guard = threading.Lock()


def _start_event_loop() -> None:
    """libvirt delivers events through an event loop the client runs: one per process."""
    global _event_loop_started
    with _event_loop_guard:
        if _event_loop_started:
            return
        libvirt.virEventRegisterDefaultImpl()

        def run() -> None:
            while True:
                libvirt.virEventRunDefaultImpl()

        threading.Thread(target=run, name="libvirt-events", daemon=True).start()
        _event_loop_started = True


def _quiet(_ctx: Any, _err: Any) -> None:
    """libvirt prints every error on stderr by default; chute reports them itself."""


libvirt.registerErrorHandler(_quiet, None)


class LibvirtDriver:
    name = "libvirt"

    def __init__(self, settings: VirtSettings) -> None:
        self.settings = settings
        self.uri = settings.connection_uri
        self._conn: libvirt.virConnect | None = None
        self._guard = threading.Lock()
        self._on_change: Callable[[str], None] | None = None

    # -- connection ---------------------------------------------------------------------------

    def check(self) -> str | None:
        """Connect once and disconnect (the agent's start-up check, before it forks): None,
        or libvirt's reason for refusing."""
        try:
            libvirt.open(self.uri).close()
        except libvirt.libvirtError as exc:
            return str(exc.get_error_message())
        return None

    def init_host(self, on_change: Callable[[str], None]) -> None:
        self._on_change = on_change
        _start_event_loop()
        self._connection()
        LOG.info("libvirt driver: %s, virt_type %s", self.uri, self.settings.virt_type)

    def _open(self) -> libvirt.virConnect:
        try:
            return libvirt.open(self.uri)
        except libvirt.libvirtError as exc:
            raise HypervisorUnavailable(
                f"cannot connect to libvirt at {self.uri} ([libvirt] connection_uri): "
                f"{exc.get_error_message()}") from None

    def _connection(self, fresh: bool = False) -> libvirt.virConnect:
        """The connection, opened again if libvirtd restarted since (or if `fresh`)."""
        with self._guard:
            if fresh and self._conn is not None:
                try:
                    self._conn.close()
                except libvirt.libvirtError:
                    pass
                self._conn = None
            if self._conn is not None:
                try:
                    if self._conn.isAlive():
                        return self._conn
                except libvirt.libvirtError:
                    pass
                LOG.warning("libvirt connection to %s lost; reconnecting", self.uri)
            self._conn = self._open()
            if self._on_change is not None:
                self._conn.setKeepAlive(5, 3)
                self._conn.domainEventRegisterAny(
                    None, libvirt.VIR_DOMAIN_EVENT_ID_LIFECYCLE, self._lifecycle, None)
            return self._conn

    def _lifecycle(self, _conn: Any, dom: libvirt.virDomain, event: int, detail: int,
                   _opaque: Any) -> None:
        if self._on_change is None or not self._owns(dom):
            return
        LOG.debug("libvirt event %d/%d for %s", event, detail, dom.UUIDString())
        self._on_change(dom.UUIDString())

    def _owns(self, dom: libvirt.virDomain) -> bool:
        try:
            xml = dom.metadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, domain.NAMESPACE)
        except libvirt.libvirtError:
            return False  # not a chute domain (no metadata), or gone meanwhile
        return domain.owner_of_element(xml) == self.settings.instances_path

    def _lookup(self, instance_id: str) -> libvirt.virDomain | None:
        try:
            return self._connection().lookupByUUIDString(instance_id)
        except libvirt.libvirtError as exc:
            if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
                return None
            raise self._error("look up", instance_id, exc) from None

    def _error(self, action: str, instance_id: str, exc: libvirt.libvirtError) -> ComputeError:
        return ComputeError(f"libvirt could not {action} instance {instance_id}: "
                            f"{exc.get_error_message()}")

    # -- the Driver protocol ------------------------------------------------------------------

    def host_resources(self) -> HostResources:
        """Asked first by every build: a connection that broke since is opened again here,
        so a libvirtd that is gone fails the build with HypervisorUnavailable."""
        try:
            info = self._connection().getInfo()  # [model, memory MiB, cpus, ...]
        except libvirt.libvirtError:
            info = self._connection(fresh=True).getInfo()
        return HostResources(vcpus=info[2], memory_mb=info[1])

    def spawn(self, instance: Instance, disk_path: str) -> None:
        dom = self._lookup(instance.id)
        if dom is not None and dom.isActive():
            # A build resumed after the agent died between start and ACTIVE: the guest runs.
            LOG.info("Instance %s: its guest already runs; adopted, not started again",
                     instance.id)
            return
        self._define_and_start(instance, "spawn")
        LOG.info("Instance %s spawned (libvirt %s, disk %s)", instance.id,
                 self.settings.virt_type, disk_path)

    def destroy(self, instance: Instance) -> None:
        dom = self._lookup(instance.id)
        if dom is None:
            return
        try:
            if dom.isActive():
                dom.destroy()
            dom.undefine()
        except libvirt.libvirtError as exc:
            if exc.get_error_code() != libvirt.VIR_ERR_NO_DOMAIN:
                raise self._error("destroy", instance.id, exc) from None
        LOG.info("Instance %s: domain destroyed and undefined", instance.id)

    def power_off(self, instance: Instance, timeout: int) -> None:
        dom = self._lookup(instance.id)
        if dom is None or not dom.isActive():
            return
        if timeout > 0 and self._shutdown(dom, timeout):
            LOG.info("Instance %s shut down cleanly", instance.id)
            return
        try:
            dom.destroy()
        except libvirt.libvirtError as exc:
            if dom.isActive():
                raise self._error("power off", instance.id, exc) from None
        LOG.info("Instance %s powered off", instance.id)

    def power_on(self, instance: Instance) -> None:
        dom = self._lookup(instance.id)
        if dom is not None and dom.isActive():
            return
        self._define_and_start(instance, "power on")

    def reboot(self, instance: Instance, hard: bool) -> None:
        dom = self._lookup(instance.id)
        if not hard and dom is not None and dom.isActive():
            # Nova's soft reboot: ask the guest to shut down, start it again once it has;
            # a guest that ignores ACPI within wait_soft_reboot_seconds gets a hard reboot.
            if self._shutdown(dom, self.settings.wait_soft_reboot_seconds):
                self._define_and_start(instance, "reboot")
                LOG.info("Instance %s soft rebooted", instance.id)
                return
            LOG.info("Instance %s did not shut down within %d s; rebooting hard", instance.id,
                     self.settings.wait_soft_reboot_seconds)
        if dom is not None and dom.isActive():
            try:
                dom.destroy()
            except libvirt.libvirtError as exc:
                raise self._error("reboot", instance.id, exc) from None
        self._define_and_start(instance, "reboot")
        LOG.info("Instance %s hard rebooted", instance.id)

    def power_state(self, instance_id: str) -> int:
        dom = self._lookup(instance_id)
        if dom is None:
            return NOSTATE
        try:
            state, _reason = dom.state()
        except libvirt.libvirtError:
            return NOSTATE
        return POWER_STATE.get(state, NOSTATE)

    def guests(self) -> dict[str, int]:
        found = {}
        for dom in self._connection().listAllDomains(0):
            if self._owns(dom):
                try:
                    state, _reason = dom.state()
                except libvirt.libvirtError:
                    continue  # undefined meanwhile
                found[dom.UUIDString()] = POWER_STATE.get(state, NOSTATE)
        return found

    def console_output(self, instance: Instance) -> str:
        path = self._instance_dir(instance.id) / CONSOLE_LOG
        try:
            with open(path, "rb") as log:
                size = log.seek(0, 2)
                log.seek(max(0, size - MAX_CONSOLE_BYTES))
                data = log.read()
        except FileNotFoundError:
            return ""
        return data.decode("utf-8", errors="replace")

    # -- helpers ------------------------------------------------------------------------------

    def _instance_dir(self, instance_id: str) -> Path:
        return Path(self.settings.instances_path) / instance_id

    def _define_and_start(self, instance: Instance, action: str) -> None:
        """(Re)define the domain from the flavor and the instance directory, then start it:
        the XML is rebuilt each time, as Nova's hard reboot does, so a config drive that
        appeared since is attached and a lost definition is recovered."""
        directory = self._instance_dir(instance.id)
        if not (directory / "disk").is_file():
            raise ComputeError(f"instance disk {directory / 'disk'} does not exist")
        xml = domain.build(instance.id, instance.name, flavors.get(instance.flavor_id),
                           directory, self.settings.virt_type, self.settings.instances_path,
                           instance.port)
        try:
            dom = self._connection().defineXML(xml)
            dom.create()
        except libvirt.libvirtError as exc:
            raise self._error(action, instance.id, exc) from None

    def _shutdown(self, dom: libvirt.virDomain, timeout: int) -> bool:
        """ACPI shutdown; True if the guest was off within `timeout` seconds."""
        start = time.monotonic()
        next_press = start
        while time.monotonic() - start < timeout:
            try:
                if not dom.isActive():
                    return True
                if time.monotonic() >= next_press:
                    dom.shutdown()
                    next_press += SHUTDOWN_RETRY_SECONDS
            except libvirt.libvirtError:
                pass  # shut off between the two calls; isActive says so next
            time.sleep(POLL_SECONDS)
        return not dom.isActive()
