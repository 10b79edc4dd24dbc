"""Test guests, built offline and cached between runs under `.cache/guests/` in the repository
(or $CHUTE_GUEST_CACHE).

    python -m tests.guests.build marker DEST      # the marker boot sector on a 1 MiB raw disk
    python -m tests.guests.build linux DEST       # a small Linux guest (raw disk, ~24 MiB)

The marker guest (chute/compute/virt/bootsector.py) prints `chute-marker boot N` on the serial
console and counts its boots on its own disk: TCG boots it in well under a second.

The Linux guest is Debian's cloud kernel and busybox-static, from their Debian packages
(`apt-get download`, unpacked with dpkg-deb: nothing from outside Debian's archive), on a FAT
disk that syslinux makes bootable (its boot sector, ldlinux, a syslinux.cfg: installed through
mtools, no mount needed). Its initramfs loads the IDE/SCSI CD-ROM and ISO 9660 modules, prints
the config drive's `openstack/latest/meta_data.json` (the `config-2` disk) if there is one,
configures its virtio NIC from the drive's `network_data.json` as cloud-init would, then
starts a shell on the serial console: `chute-linux: shell ready` then the `~ # ` prompt.
TCG boots it in 5-20 s here.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from chute.compute.virt import bootsector

REPO = Path(__file__).resolve().parent.parent.parent


def cache_dir() -> Path:
    path = Path(os.environ.get("CHUTE_GUEST_CACHE") or REPO / ".cache" / "guests")
    path.mkdir(parents=True, exist_ok=True)
    return path


def marker(dest: Path, poweroff: bool = False) -> Path:
    """The marker disk (no cache needed: 512 bytes assembled in microseconds)."""
    return bootsector.write_disk(dest, poweroff=poweroff)


KERNEL_PACKAGE = "linux-image-cloud-amd64"  # a metapackage: the kernel is its dependency
TOOLS = {"mkfs.fat": "dosfstools", "mcopy": "mtools", "syslinux": "syslinux",
         "genisoimage": "genisoimage"}
SYSLINUX_MODULES = Path("/usr/lib/syslinux/modules/bios")
# Load order (each after what it needs): the CD-ROM on IDE, then ISO 9660.
# The ACPI power button (button, evdev) lets busybox's acpid power the guest off cleanly when
# libvirt asks (os-stop, a SOFT reboot), as a real distribution's init does.
# The virtio NIC last (virtio_ring, virtio, the PCI transport, failover, virtio_net).
MODULES = ("scsi_common", "scsi_mod", "libata", "ata_piix", "cdrom", "sr_mod", "isofs",
           "button", "evdev", "virtio_ring", "virtio", "virtio_pci_legacy_dev",
           "virtio_pci_modern_dev", "virtio_pci", "failover", "net_failover", "virtio_net")
DISK_MIB = 24
SHELL_READY = "chute-linux: shell ready"
POWERING_OFF = "chute-linux: power button pressed, powering off"
PROMPT = "~ # "

# What cloud-init or Glean would do with network_data.json, in busybox sh: the NIC whose MAC
# the first link names gets the first network's static address, netmask and default route
# (`field` reads a key's first value: one "key": "value" per comma-separated piece).
CONFIGURE_NETWORK = r"""configure_network() {
  field() { tr ',' '\n' <"$2" | sed -n "s/.*\"$1\": \"\([^\"]*\)\".*/\1/p" | head -n 1; }
  mac=$(field ethernet_mac_address "$1"); addr=$(field ip_address "$1")
  mask=$(field netmask "$1"); gw=$(field gateway "$1")
  [ -n "$addr" ] || return 0
  for i in 1 2 3 4 5 6 7 8 9 10; do
    for nic in /sys/class/net/*; do
      [ "$(cat $nic/address)" = "$mac" ] && dev=${nic##*/}
    done
    [ -n "$dev" ] && break; sleep 0.2
  done
  ifconfig "$dev" "$addr" netmask "$mask" up && route add default gw "$gw"
  echo "chute-linux: network $dev $mac $addr/$mask via $gw"
  if ping -c 1 -W 5 "$gw" >/dev/null 2>&1; then echo "chute-linux: gateway $gw answers"
  else echo "chute-linux: gateway $gw does not answer"; fi
}
"""

INIT = f"""#!/bin/sh
{CONFIGURE_NETWORK}
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
for m in {" ".join(MODULES)}; do insmod /lib/modules/$m.ko; done
echo "chute-linux: kernel $(uname -r) up"
for i in 1 2 3 4 5 6 7 8 9 10; do [ -b /dev/sr0 ] && break; sleep 0.2; done
if mount -t iso9660 -o ro /dev/sr0 /mnt 2>/dev/null; then
  echo "chute-linux: config drive $(cat /sys/block/sr0/device/model 2>/dev/null)"
  cat /mnt/openstack/latest/meta_data.json; echo
  configure_network /mnt/openstack/latest/network_data.json
else
  echo "chute-linux: no config drive"
fi
mkdir -p /etc/acpi/PWRF
printf '#!/bin/sh\necho "{POWERING_OFF}" > /dev/console\npoweroff -f\n' \
  > /etc/acpi/PWRF/00000080
chmod 755 /etc/acpi/PWRF/00000080
for i in 1 2 3 4 5 6 7 8 9 10; do [ -c /dev/input/event0 ] && break; sleep 0.2; done
acpid -f -c /etc/acpi -l /dev/null &
echo "{SHELL_READY}"
export PS1='{PROMPT}'
exec setsid cttyhack /bin/sh
"""

SYSLINUX_CFG = """SERIAL 0 115200
DEFAULT linux
PROMPT 0
TIMEOUT 0
LABEL linux
  KERNEL vmlinuz
  INITRD initrd.gz
  APPEND console=ttyS0 quiet panic=-1
"""


def ensure_tools() -> None:
    missing = sorted({pkg for tool, pkg in TOOLS.items() if shutil.which(tool) is None})
    if missing:
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "-o", "DPkg::Lock::Timeout=600", "install", "-y", "-qq",
                        "--no-install-recommends", *missing], check=True, env=env,
                       stdout=subprocess.DEVNULL)


def _kernel_package() -> str:
    out = subprocess.run(["apt-cache", "depends", KERNEL_PACKAGE], capture_output=True,
                         text=True, check=True).stdout
    return next(line.split(":", 1)[1].strip() for line in out.splitlines()
                if line.strip().startswith("Depends:") and "linux-image-" in line)


def linux(dest: Path | None = None) -> Path:
    """The Linux guest's raw disk, from the cache if built before for the same kernel and
    the same /init and modules (their digest is in the name)."""
    ensure_tools()
    kernel = _kernel_package()
    recipe = hashlib.sha256(f"{INIT}{MODULES}{SYSLINUX_CFG}".encode()).hexdigest()[:12]
    cached = cache_dir() / f"{kernel}-{recipe}.raw"
    if not cached.exists():
        with tempfile.TemporaryDirectory(prefix="chute-guest-") as tmp:
            _build_linux(Path(tmp), kernel, cached)
    if dest is None:
        return cached
    shutil.copyfile(cached, dest)
    return dest


def _build_linux(tmp: Path, kernel: str, out: Path) -> None:
    os.chmod(tmp, 0o755)  # apt-get download runs as _apt where it can
    subprocess.run(["apt-get", "download", "-qq", kernel, "busybox-static"], cwd=tmp,
                   check=True, stderr=subprocess.DEVNULL)
    root = tmp / "root"
    for deb in tmp.glob("*.deb"):
        subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True)
    vmlinuz = next((root / "boot").glob("vmlinuz-*"))
    modules = next((root / "lib" / "modules").iterdir())
    files: dict[str, tuple[bytes, int]] = {
        "init": (INIT.encode(), 0o100755),
        "bin/busybox": ((root / "bin" / "busybox").read_bytes(), 0o100755),
        "bin/sh": (b"busybox", 0o120777),  # a symlink: /init's interpreter
    }
    for name in MODULES:
        found = next(modules.rglob(f"{name}.ko"))
        files[f"lib/modules/{name}.ko"] = (found.read_bytes(), 0o100644)
    initrd = tmp / "initrd.gz"
    initrd.write_bytes(gzip.compress(_newc(files), compresslevel=6))
    disk = tmp / "disk.raw"
    subprocess.run(["mkfs.fat", "-C", "-n", "CHUTE", str(disk), str(DISK_MIB * 1024)],
                   check=True, stdout=subprocess.DEVNULL)
    (tmp / "syslinux.cfg").write_text(SYSLINUX_CFG)
    for source, name in ((vmlinuz, "vmlinuz"), (initrd, "initrd.gz"),
                         (tmp / "syslinux.cfg", "syslinux.cfg")):
        subprocess.run(["mcopy", "-i", str(disk), str(source), f"::/{name}"], check=True)
    subprocess.run(["syslinux", "--install", str(disk)], check=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    part = out.with_suffix(".part")
    shutil.move(disk, part)
    os.replace(part, out)


def _newc(files: dict[str, tuple[bytes, int]]) -> bytes:
    """A cpio archive in the kernel's initramfs format (newc), directories first."""
    out = io.BytesIO()
    dirs = {str(parent) for name in files for parent in Path(name).parents} - {"."}
    dirs |= {"proc", "sys", "dev", "mnt", "bin", "tmp"}
    entries = [(d, b"", 0o040755) for d in sorted(dirs, key=lambda d: d.count("/"))]
    entries += [(name, data, mode) for name, (data, mode) in files.items()]
    entries.append(("TRAILER!!!", b"", 0))
    for ino, (name, data, mode) in enumerate(entries, start=1):
        encoded = name.encode() + b"\0"
        fields = [ino, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(encoded), 0]
        out.write(b"070701" + b"".join(b"%08X" % value for value in fields) + encoded)
        out.write(b"\0" * (-out.tell() % 4))
        out.write(data)
        out.write(b"\0" * (-out.tell() % 4))
    return out.getvalue()


def config_drive(dest: Path, meta_data: str) -> Path:
    """An ISO 9660 config drive (label config-2) holding `meta_data` as
    openstack/latest/meta_data.json: the test's stand-in for the one chute writes."""
    ensure_tools()
    with tempfile.TemporaryDirectory(prefix="chute-cd-") as tmp:
        latest = Path(tmp) / "openstack" / "latest"
        latest.mkdir(parents=True)
        (latest / "meta_data.json").write_text(meta_data)
        subprocess.run(["genisoimage", "-quiet", "-o", str(dest), "-V", "config-2", "-r",
                        "-J", tmp], check=True)
    return dest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.guests.build")
    parser.add_argument("guest", choices=("marker", "marker-poweroff", "linux"))
    parser.add_argument("dest", type=Path)
    args = parser.parse_args(argv)
    if args.guest == "linux":
        linux(args.dest)
    else:
        marker(args.dest, poweroff=args.guest == "marker-poweroff")
    print(args.dest)
    return 0


if __name__ == "__main__":
    sys.exit(main())
