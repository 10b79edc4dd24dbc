"""Can this host's KVM run a stock guest? Boot the marker boot sector under it and see.

/dev/kvm existing is not enough: on some hosts (a paravirtual KVM backend inside another
hypervisor) the device opens and qemu starts, but a guest using BIOS services prints nothing
or aborts on an MSR. Observed here: the marker boot sector prints under TCG in ~0.1 s and
nothing under `-accel kvm` (its int 13h disk read never returns). So the probe boots the
marker from a throw-away disk and waits a few seconds for its line, BOOTS times: on this
host KVM ran it about one time in five, and a host that runs guests now and then does not run
guests.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile

from chute.compute.virt import bootsector

QEMU = "qemu-system-x86_64"
TIMEOUT = 5.0  # seconds; the marker prints in well under one under KVM or TCG
BOOTS = 3  # each a fraction of a second where KVM works
# What KVM can do changes with the kernel or qemu, not between two agent starts: the answer is
# kept in /run (gone at reboot) so that only the first start after a boot waits for it.
CACHE = "/run/chute/kvm-probe.json"


def kvm_problem() -> str | None:
    """None if KVM ran the marker guest, else one phrase saying what went wrong."""
    key = _cache_key()
    try:
        with open(CACHE, encoding="utf-8") as f:
            cached = json.load(f)
        if cached.get("key") == key:
            problem = cached.get("problem")
            return problem if isinstance(problem, str) else None
    except (OSError, ValueError, AttributeError):
        pass
    problem = _probe()
    try:
        os.makedirs(os.path.dirname(CACHE), exist_ok=True)
        with open(CACHE + ".tmp", "w", encoding="utf-8") as f:
            json.dump({"key": key, "problem": problem}, f)
        os.replace(CACHE + ".tmp", CACHE)
    except OSError:
        pass  # not root: probe again next time
    return problem


def _cache_key() -> str:
    qemu = next((os.path.join(d, QEMU) for d in os.environ.get("PATH", "").split(os.pathsep)
                 if os.path.exists(os.path.join(d, QEMU))), "")
    stamp = os.stat(qemu).st_mtime_ns if qemu else 0
    return f"{os.uname().release} {qemu} {stamp}"


def _probe() -> str | None:
    for n in range(BOOTS):
        problem = _boot_once()
        if problem is not None:
            return problem if n == 0 else f"{problem} (boot {n + 1} of {BOOTS})"
    return None


def _boot_once() -> str | None:
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
    # qemu's warnings (CPU features the host lacks) are not why the guest was silent.
    lines = [line for line in errors.decode(errors="replace").splitlines()
             if line.strip() and "warning:" not in line]
    detail = " ".join(" ".join(lines).split())[-200:]
    return ("a test guest printed nothing under KVM within "
            f"{TIMEOUT:g} s" + (f" ({detail})" if detail else ""))
