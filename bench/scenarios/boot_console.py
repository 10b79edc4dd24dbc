"""boot to console: `POST /servers` until the guest's first line on its serial console, for an
image whose first sector is the marker guest (chute/compute/virt/bootsector.py) and whose other
bytes are random, on a compute host running guests with libvirt (virt_type qemu: TCG).

The baseline does by hand what a boot must do at least: a durable `cp` of the stored image
(the same file the boot copies through the shared filesystem), then `virsh create` of the same
domain XML chute would define, waiting for the same line in the console log. chute adds the
API, the verification of every byte, the qcow2 overlay, the persistent domain and the console
read over the API; target <= 1.2x.
"""

from __future__ import annotations

import shutil
import subprocess
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from bench import clients
from bench.context import Context
from bench.harness import Case, Sample, ScenarioResult, Target, measure
from bench.scenarios._boot import forget_base
from bench.services import start_compute
from chute.compute import flavors
from chute.compute.virt import bootsector, domain

NAME = "boot_console"
TITLE = "boot to console: POST /servers -> marker on the console, vs durable cp + virsh create"
URI = "qemu:///system"
LIBVIRT = "compute_driver = libvirt\n\n[libvirt]\nvirt_type = qemu\n"
SETUP = Path(__file__).resolve().parents[2] / "tools" / "libvirt-setup"
POLL = 0.02
TIMEOUT = 120.0


def _marker_image(ctx: Context, size: int) -> Path:
    """The random file with the marker boot sector in front (size unchanged)."""
    path = ctx.work / "data" / f"marker-{size}.bin"
    if not path.exists() or path.stat().st_size != size:
        shutil.copyfile(ctx.random_file(size), path)
        with open(path, "r+b") as handle:
            handle.write(bootsector.boot_sector())
    return path


def _wait(read: Callable[[], str], what: str) -> None:
    deadline = time.monotonic() + TIMEOUT
    while bootsector.MARKER_TEXT.decode() not in read():
        if time.monotonic() > deadline:
            raise clients.BenchError(f"no marker on {what} within {TIMEOUT:g} s")
        time.sleep(POLL)


def _console(compute: str, server_id: str) -> str:
    """The console so far; "" while the server builds (409 "not ready", as Nova)."""
    doc = clients.call("POST", f"{compute}/v2.1/servers/{server_id}/action",
                       {"os-getConsoleOutput": {}}, expect=(200, 409))
    return str(doc.get("output", ""))


def run(ctx: Context) -> ScenarioResult:
    size = ctx.opts.size
    result = ScenarioResult(NAME, TITLE, size, ctx.opts.runs)
    # libvirtd configured and started (installed too, unless --no-install: `make bench` and
    # `make test` install it through the Makefile's sysdeps).
    subprocess.run([str(SETUP)] + ([] if ctx.opts.install else ["--no-install"]), check=True,
                   capture_output=True)
    path = _marker_image(ctx, size)
    site = ctx.chute()
    image_id = clients.upload(site.api.url, str(path), ctx.digest(path), size)
    source = clients.stored_path(site.api.url, image_id)
    if "libvirt" not in site.computes:
        site.computes["libvirt"] = start_compute(site, "libvirt", True, extra=LIBVIRT)
    compute = site.computes["libvirt"]
    instances = site.root / "compute-libvirt" / "instances"
    baseline = ctx.scratch("boot-console")

    def chute_boot() -> Sample:
        started = time.perf_counter()
        doc = clients.call("POST", f"{compute.url}/v2.1/servers",
                           {"server": {"name": clients.unique("console"), "imageRef": image_id,
                                       "flavorRef": "2"}}, expect=(202,))
        server_id = doc["server"]["id"]
        try:
            _wait(lambda: _console(compute.url, server_id), f"server {server_id}'s console")
            return Sample(time.perf_counter() - started)
        finally:
            clients.delete_server(compute.url, server_id)
            forget_base(instances, image_id)

    def by_hand() -> Sample:
        instance = clients.unique("by-hand")
        directory = baseline / instance
        directory.mkdir()
        xml = directory / "domain.xml"
        started = time.perf_counter()
        clients.timed(["cp", "--reflink=never", str(source), str(directory / "disk")])
        clients.timed(["sync", str(directory / "disk")])
        domain_id = str(uuid.uuid4())
        xml.write_text(domain.build(domain_id, instance, flavors.get("2"), directory, "qemu",
                                    str(baseline)))
        clients.timed(["virsh", "-q", "-c", URI, "create", str(xml)])
        log = directory / "console.log"
        try:
            _wait(lambda: log.read_text(errors="replace") if log.exists() else "", str(log))
            return Sample(time.perf_counter() - started)
        finally:
            subprocess.run(["virsh", "-q", "-c", URI, "destroy", domain_id], capture_output=True)
            shutil.rmtree(directory, ignore_errors=True)

    cases = [
        Case("chute_console", "POST /servers -> marker on the console (API)", chute_boot,
             unit="s"),
        Case("cp_virsh", "cp + sync, virsh create -> marker in console.log", by_hand,
             unit="s", side="limit"),
    ]
    targets = [Target("chute / cp + virsh create (seconds)", "chute_console", "cp_virsh",
                      "<=", 1.2)]
    measure(result, cases, targets, between=clients.settle)
    result.notes.append("virt_type qemu (TCG); the guest is the marker boot sector, its line "
                        "is the first thing it prints")
    clients.delete_image(site.api.url, image_id)
    return result
