"""The libvirt domain XML of an instance: built from the flavor and the instance directory.

The domain's uuid is the instance's and so is its name, so `virsh list` and the API show the
same ids. A `<chute:instance>` metadata element records the instances_path the domain belongs
to: several agents may share one libvirtd (tests do), and each adopts only its own guests.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from chute.compute.flavors import Flavor
from chute.compute.instance import Port
from chute.compute.virt import CONFIG_DRIVE, CONSOLE_LOG

NAMESPACE = "http://chute.invalid/xmlns/libvirt/instance/1.0"
_QEMU_FORMAT = {b"QFI\xfb": "qcow2"}


def disk_format(disk_path: Path) -> str:
    """qcow2 (an overlay) or raw: the two layouts of compute/disks.py, told by their magic."""
    with open(disk_path, "rb") as f:
        return _QEMU_FORMAT.get(f.read(4), "raw")


def build(instance_id: str, name: str, flavor: Flavor, instance_dir: Path, virt_type: str,
          instances_path: str, port: Port | None = None) -> str:
    domain = ET.Element("domain", type=virt_type)
    ET.SubElement(domain, "name").text = instance_id
    ET.SubElement(domain, "uuid").text = instance_id
    metadata = ET.SubElement(domain, "metadata")
    ET.SubElement(metadata, "chute:instance", {"xmlns:chute": NAMESPACE, "name": name,
                                               "instances_path": instances_path})
    ET.SubElement(domain, "memory", unit="MiB").text = str(flavor.ram)
    ET.SubElement(domain, "vcpu").text = str(flavor.vcpus)
    os_ = ET.SubElement(domain, "os")
    ET.SubElement(os_, "type", arch="x86_64", machine="pc").text = "hvm"
    ET.SubElement(os_, "boot", dev="hd")
    # SeaBIOS's own messages ("Booting from Hard Disk", "Boot failed") go to the serial
    # console too: the console then says why a guest that does not boot did not.
    ET.SubElement(os_, "bios", useserial="yes")
    features = ET.SubElement(domain, "features")
    ET.SubElement(features, "acpi")
    ET.SubElement(features, "apic")
    # A guest that powers itself off stays defined (SHUTOFF): os-start boots it again.
    for event, action in (("on_poweroff", "destroy"), ("on_reboot", "restart"),
                          ("on_crash", "destroy")):
        ET.SubElement(domain, event).text = action
    devices = ET.SubElement(domain, "devices")
    _disk(devices, instance_dir / "disk")
    config_drive = instance_dir / CONFIG_DRIVE
    if config_drive.exists():
        _config_drive(devices, config_drive)
    if port is not None:
        _interface(devices, port)
    _serial_console(devices, instance_dir / CONSOLE_LOG)
    ET.SubElement(devices, "memballoon", model="virtio")
    return ET.tostring(domain, encoding="unicode")


def _disk(devices: ET.Element, path: Path) -> None:
    disk = ET.SubElement(devices, "disk", type="file", device="disk")
    ET.SubElement(disk, "driver", name="qemu", type=disk_format(path))
    ET.SubElement(disk, "source", file=str(path))
    ET.SubElement(disk, "target", dev="vda", bus="virtio")


def _config_drive(devices: ET.Element, path: Path) -> None:
    """Read-only, on IDE as Nova's default config drive on x86 (`config_drive_format`
    iso9660): every guest kernel has the driver, and cloud-init looks for label config-2."""
    disk = ET.SubElement(devices, "disk", type="file", device="cdrom")
    ET.SubElement(disk, "driver", name="qemu", type="raw")
    ET.SubElement(disk, "source", file=str(path))
    ET.SubElement(disk, "target", dev="hdd", bus="ide")
    ET.SubElement(disk, "readonly")


def _interface(devices: ET.Element, port: Port) -> None:
    """A virtio NIC with the port's MAC: a tap on the port's bridge, or QEMU's user-mode
    network (slirp) when it has none (compute/network.py)."""
    if port.bridge is not None:
        nic = ET.SubElement(devices, "interface", type="bridge")
        ET.SubElement(nic, "source", bridge=port.bridge)
    else:
        nic = ET.SubElement(devices, "interface", type="user")
    ET.SubElement(nic, "mac", address=port.mac)
    ET.SubElement(nic, "model", type="virtio")


def _serial_console(devices: ET.Element, log: Path) -> None:
    """A pty (so `virsh console` works) whose output virtlogd appends to console.log, as
    Nova's libvirt driver does: the log survives qemu and agent restarts."""
    serial = ET.SubElement(devices, "serial", type="pty")
    ET.SubElement(serial, "log", file=str(log), append="on")
    ET.SubElement(serial, "target", port="0")
    console = ET.SubElement(devices, "console", type="pty")
    ET.SubElement(console, "target", type="serial", port="0")


def owner_of_element(xml: str) -> str | None:
    """The instances_path recorded in a domain's `<chute:instance>` metadata element (as
    libvirt's virDomainGetMetadata returns it)."""
    try:
        return ET.fromstring(xml).get("instances_path")
    except ET.ParseError:
        return None
