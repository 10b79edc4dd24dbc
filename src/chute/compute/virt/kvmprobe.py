"""Can this host's KVM run a stock guest? Boot the marker boot sector under it and see.

/dev/kvm existing is not enough: on some hosts (a paravirtual KVM backend inside another
hypervisor) the device opens and qemu starts, but a guest using BIOS services prints nothing
or aborts on an MSR. Observed here: the marker boot sector prints under TCG in ~0.1 s and
nothing under `-accel kvm` (its int 13h disk read never returns). So the probe boots the
marker from a throw-away disk and waits a few seconds for its line.
"""

from __future__ import annotations

import os
import subprocess
import tempfile

from chute.compute.virt import bootsector

QEMU = "qemu-system-x86_64"
TIMEOUT = 5.0  # seconds; the marker prints in well under one under KVM or TCG


def kvm_problem() -> str | None:
    """None if KVM ran the marker guest, else one phrase saying what went wrong."""
    if not os.path.exists("/dev/kvm"):
        return "/dev/kvm does not exist"
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return "/dev/kvm is not readable and writable"
    with tempfile.TemporaryDirectory(prefix="chute-kvm-probe-") as tmp:
        disk = bootsector.write_disk(os.path.join(tmp, "disk"))
        cmd = [QEMU, "-accel", "kvm", "-m", "64", "-nodefaults", "-display", "none",
               "-no-reboot", "-serial", "stdio",
               "-drive", f"file={disk},format=raw,if=virtio,snapshot=on"]
        try:
            proc = subprocess.run(cmd, capture_output=True, timeout=TIMEOUT, check=False)
            output, errors = proc.stdout, proc.stderr
        except subprocess.TimeoutExpired as exc:
            output, errors = exc.stdout or b"", exc.stderr or b""
        except OSError as exc:
            return f"cannot run {QEMU}: {exc.strerror}"
    if bootsector.MARKER_TEXT in output:
        return None
    detail = " ".join(errors.decode(errors="replace").split())[-200:]
    return ("a test guest printed nothing under KVM within "
            f"{TIMEOUT:g} s" + (f" ({detail})" if detail else ""))
