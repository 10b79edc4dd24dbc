"""direct fetch, clone: the same boot on XFS with reflink, where the copy itself is O(1).

chute-api's store and the compute host's `_base` live on one XFS filesystem made in a sparse
file and loop-mounted (`mkfs.xfs -m reflink=1`), so FICLONE (or copy_file_range, which
reflinks there) shares extents instead of copying. What is left is verification: the boot must
still read every byte to check its digest, so the floor is a plain, hash-free read of the file.
"verification alone" runs exactly what a clone's check costs (chute.transfer.blockdigest,
pread by one thread per core, no boot around it) on the same file, so the table shows how far
the boot is from its own verification and how far that is from the plain read. The boot is
POST -> the agent logging the server ACTIVE (millisecond timestamps), polled every 50 ms;
"seen by poll s" is when the poll saw it.
Needs root (mount); without it the scenario is skipped with the reason.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

from bench import clients
from bench.context import Context
from bench.harness import Case, Sample, ScenarioResult, Target, measure
from bench.scenarios._boot import boot_once, durable_cp, plain_read, run_quiet
from bench.scenarios._cold import cold_cases, cold_targets
from bench.services import start_api
from chute.transfer.blockdigest import blocks_digest_fd
from chute.transfer.copy import segments

NAME = "clone"
# The boot is timed to the agent's ACTIVE log line (bench.scenarios._boot.boot_once), so the
# poll need not be fast: each GET is CPU the agent takes from the verification being timed.
POLL = 0.05
TITLE = "direct fetch, clone (XFS reflink): boot vs cp --reflink=always and a plain read"
MiB = 1 << 20


class MountUnavailable(RuntimeError):
    pass


def mount_xfs(work: Path, size: int) -> Path:
    """A fresh reflink-enabled XFS at work/xfs-mnt; -> the mountpoint."""
    image, mnt = work / "xfs.img", work / "xfs-mnt"
    unmount(mnt)
    image.unlink(missing_ok=True)
    mnt.mkdir(parents=True, exist_ok=True)
    with open(image, "wb") as handle:
        handle.truncate(max(3 * size + 512 * MiB, 320 * MiB))
    for argv in (["mkfs.xfs", "-q", "-f", "-m", "reflink=1", str(image)],
                 ["mount", "-o", "loop", str(image), str(mnt)]):
        if shutil.which(argv[0]) is None:
            raise MountUnavailable(f"{argv[0]} not installed (apt-get install xfsprogs)")
        done = run_quiet(argv)
        if done.returncode != 0:
            raise MountUnavailable(f"{' '.join(argv[:3])} failed: "
                                   f"{(done.stderr or done.stdout).strip()[-200:]}")
    return mnt


def unmount(mnt: Path) -> None:
    if run_quiet(["mountpoint", "-q", str(mnt)]).returncode == 0:
        if run_quiet(["umount", str(mnt)]).returncode != 0:
            run_quiet(["umount", "-l", str(mnt)])


def verify_alone(path: Path, expected: str) -> float:
    """Seconds for the blake3-blocks check of `path` as a clone boot does it; fails on a
    mismatch, so the baseline is known to have hashed the right bytes."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        size = os.fstat(fd).st_size
        started = time.perf_counter()
        digest = blocks_digest_fd(fd, segments(fd, size), size)
        seconds = time.perf_counter() - started
    finally:
        os.close(fd)
    if digest != expected:
        raise clients.BenchError(f"blake3-blocks of {path} is {digest}, expected {expected}")
    return seconds


def run(ctx: Context) -> ScenarioResult:
    size = ctx.opts.size
    result = ScenarioResult(NAME, TITLE, size, ctx.opts.runs)
    path = ctx.random_file(size)
    try:
        mnt = mount_xfs(ctx.work, size)
    except MountUnavailable as exc:
        result.skipped = f"skipped: cannot make an XFS loop mount here: {exc}"
        return result
    site = None
    try:
        site = start_api(mnt / "chute")
        image_id = clients.upload(site.api.url, str(path), ctx.digest(path), size)
        source = clients.stored_path(site.api.url, image_id)
        expected = clients.get_image(site.api.url, image_id)["os_glance_blake3_blocks"]
        compute = site.compute(direct=True)
        primitives: set[str] = set()

        def boot() -> Sample:
            booted = boot_once(compute, site.instances(True), image_id, "file", poll=POLL)
            primitives.add(str(booted.transfer.get("primitive")))
            seconds = booted.agent_seconds or booted.seconds
            return Sample(size / MiB / seconds,
                          {"fetch s": float(booted.transfer.get("seconds") or 0.0),
                           "seen by poll s": booted.seconds,
                           "compute CPU s": booted.cpu})

        copy = site.instances(True) / "cp-baseline.bin"
        cases = [
            Case("chute_clone", "boot via file on XFS: clone + verify", boot),
            Case("cp_reflink", "cp --reflink=always + sync",
                 lambda: Sample(size / MiB / durable_cp(source, copy, "always")),
                 side="limit"),
            Case("plain_read", "plain hash-free read of the file (1 MiB readinto)",
                 lambda: Sample(size / MiB / plain_read(source)), side="limit"),
            Case("verify_alone", "verification alone: blake3-blocks of the file, no boot",
                 lambda: Sample(size / MiB / verify_alone(source, expected)), side="limit"),
        ]
        targets = [
            Target("boot via clone / plain read", "chute_clone", "plain_read", ">=", 0.5),
            Target("boot via clone / cp --reflink=always", "chute_clone", "cp_reflink"),
            Target("boot via clone / verification alone", "chute_clone", "verify_alone"),
            Target("verification alone / plain read", "verify_alone", "plain_read"),
        ]
        cold_keys = {"chute_clone", "plain_read", "verify_alone"}  # the source read from disk
        cases += cold_cases(cases, cold_keys)
        targets += cold_targets(targets, cold_keys)
        measure(result, cases, targets, between=clients.settle)
        result.notes.append(f"copy primitive used on XFS: {', '.join(sorted(primitives))}")
    finally:
        if site is not None:
            site.stop()
        unmount(mnt)
        (ctx.work / "xfs.img").unlink(missing_ok=True)
    return result
