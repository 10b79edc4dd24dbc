"""libvirt as the tests see it: start it (tools/libvirt-setup), look at the domains an agent
defined, and remove them when a test's agent is gone (a killed agent leaves its guests
running, by design)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import libvirt

from chute.compute.virt import domain

URI = "qemu:///system"
SETUP = Path(__file__).resolve().parent.parent.parent / "tools" / "libvirt-setup"


def ensure_libvirtd() -> None:
    """Install, configure and start libvirt if needed (idempotent, ~0.5 s when done)."""
    subprocess.run([str(SETUP)], check=True)


def connect() -> libvirt.virConnect:
    return libvirt.open(URI)


def domains_of(instances_path: Path) -> dict[str, libvirt.virDomain]:
    """The domains an agent with this instances_path defined, by uuid."""
    conn = connect()
    found = {}
    for dom in conn.listAllDomains(0):
        try:
            xml = dom.metadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, domain.NAMESPACE)
        except libvirt.libvirtError:
            continue
        if domain.owner_of_element(xml) == str(instances_path):
            found[dom.UUIDString()] = dom
    return found


def remove_domains(instances_path: Path) -> None:
    for dom in domains_of(instances_path).values():
        try:
            if dom.isActive():
                dom.destroy()
            dom.undefine()
        except libvirt.libvirtError:
            pass  # gone meanwhile


def qemu_pid(instance_id: str) -> int:
    """The pid of the instance's qemu, from libvirt's pid file."""
    return int(Path(f"/run/libvirt/qemu/{instance_id}.pid").read_text())
