"""libvirt as the tests see it: start it (tools/libvirt-setup), look at the domains an agent
defined, and remove them when a test's agent is gone (a killed agent leaves its guests
running, by design)."""

from __future__ import annotations

import socket
import subprocess
import threading
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


def chute_domains() -> list[tuple[str, libvirt.virDomain]]:
    """Every domain a chute agent defined, with the agent's instances_path."""
    found = []
    for dom in connect().listAllDomains(0):
        try:
            xml = dom.metadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, domain.NAMESPACE)
        except libvirt.libvirtError:
            continue
        found.append((domain.owner_of_element(xml) or "", dom))
    return found


def domains_of(instances_path: Path) -> dict[str, libvirt.virDomain]:
    """The domains an agent with this instances_path defined, by uuid."""
    return {dom.UUIDString(): dom for owner, dom in chute_domains()
            if owner == str(instances_path)}


def remove(dom: libvirt.virDomain) -> None:
    try:
        if dom.isActive():
            dom.destroy()
        dom.undefine()
    except libvirt.libvirtError:
        pass  # gone meanwhile


def remove_domains(instances_path: Path) -> None:
    for dom in domains_of(instances_path).values():
        remove(dom)


def qemu_pid(instance_id: str) -> int:
    """The pid of the instance's qemu, from libvirt's pid file."""
    return int(Path(f"/run/libvirt/qemu/{instance_id}.pid").read_text())


class SocketRelay:
    """A unix socket that relays to libvirtd's until `close()`: the agent's libvirtd goes
    away for real (its connections are cut, new ones refused) while the host's keeps serving
    the other tests."""

    def __init__(self, path: Path, upstream: str = "/run/libvirt/libvirt-sock") -> None:
        self.path, self.upstream = path, upstream
        self.uri = f"qemu+unix:///system?socket={path}"
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(str(path))
        self.listener.listen(16)
        self.sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            upstream.connect(self.upstream)
            self.sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def close(self) -> None:
        self.listener.close()
        self.path.unlink(missing_ok=True)
        for s in self.sockets:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()
