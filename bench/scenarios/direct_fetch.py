"""direct fetch: a boot whose image is copied through the shared filesystem into `_base`,
verified and fsynced, beside a durable `cp` of the same file and chute's own HTTP fetch.

`cp --reflink=never` + `sync` writes the same bytes durably but proves nothing about them; the
boot also checks size and digest (os_glance_blake3_blocks) while copying. The HTTP case is the
same boot on a compute host whose allowed_direct_url_schemes leaves `file` out; durable cp / HTTP
boot says how close the HTTP boot already is to writing the bytes durably at all.
"""

from __future__ import annotations

from bench import clients
from bench.context import Context
from bench.harness import Case, Sample, ScenarioResult, Target, measure
from bench.scenarios._boot import boot_once, durable_cp
from bench.scenarios._cold import cold_cases, cold_targets

NAME = "direct_fetch"
TITLE = "direct fetch: boot -> verified, fsynced base via file, vs durable cp and HTTP fetch"
MiB = 1 << 20


def run(ctx: Context) -> ScenarioResult:
    size = ctx.opts.size
    result = ScenarioResult(NAME, TITLE, size, ctx.opts.runs)
    path = ctx.random_file(size)
    site = ctx.chute()
    image_id = clients.upload(site.api.url, str(path), ctx.digest(path), size)
    source = clients.stored_path(site.api.url, image_id)
    direct, http = site.compute(direct=True), site.compute(direct=False)
    primitives: set[str] = set()

    def boot(is_direct: bool) -> Sample:
        booted = boot_once(direct if is_direct else http, site.instances(is_direct), image_id,
                           "file" if is_direct else "http")
        if booted.base_size != size:
            raise clients.BenchError(f"base holds {booted.base_size} bytes, not {size}")
        if booted.transfer.get("primitive"):
            primitives.add(str(booted.transfer["primitive"]))
        extra = {"fetch s": float(booted.transfer.get("seconds") or 0.0),
                 "compute CPU s": booted.cpu}
        return Sample(size / MiB / booted.seconds, extra)

    copy = site.instances(True) / "cp-baseline.bin"
    cases = [
        Case("chute_file", "boot via file: verified, fsynced base", lambda: boot(True)),
        Case("cp_sync", "cp --reflink=never + sync (durable, unverified)",
             lambda: Sample(size / MiB / durable_cp(source, copy, "never")), side="limit"),
        Case("chute_http", "boot via chute's HTTP fetch", lambda: boot(False)),
    ]
    targets = [
        Target("boot via file / durable cp", "chute_file", "cp_sync", ">=", 0.8),
        Target("boot via file / boot via HTTP", "chute_file", "chute_http", ">=", 3.0),
        # Both boots end with the image durably in _base; where the HTTP boot is about as
        # fast as a durable cp of the bytes, 3x it would take a file path ~3x that cp.
        Target("durable cp / boot via HTTP", "cp_sync", "chute_http"),
    ]
    cold_keys = {"chute_file", "cp_sync", "chute_http"}  # the store file read from disk
    cases += cold_cases(cases, cold_keys)
    targets += cold_targets(targets, cold_keys)
    measure(result, cases, targets, between=clients.settle)
    result.notes.append(f"copy primitive used: {', '.join(sorted(primitives)) or 'n/a'}; "
                        f"MiB/s = image bytes / boot wall time (POST to ACTIVE)")
    clients.delete_image(site.api.url, image_id)
    return result
