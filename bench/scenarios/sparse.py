"""sparse: a raw image of 4x the size, virtual, holding size/2 of data, beside a dense image of
size/2, each booted through the filesystem and over HTTP.

A sparse-aware fetch (SEEK_DATA/SEEK_HOLE; over HTTP, chute's extents extension, else zero
detection) costs about the same as the dense one and leaves holes in the base; a naive one moves
and writes 4x the bytes.
"Source" for the allocation ratio is the file that was uploaded (st_blocks * 512); the note
also gives what chute's store allocated for it.
"""

from __future__ import annotations

import os
from pathlib import Path

from bench import clients
from bench.context import Context
from bench.harness import Case, Sample, ScenarioResult, Target, measure
from bench.scenarios._boot import boot_once
from bench.scenarios._cold import cold_cases, cold_targets

NAME = "sparse"
TITLE = "sparse: 4x virtual raw with size/2 data vs dense size/2, direct and HTTP"
MiB = 1 << 20


def sparse_file(work: Path, size: int) -> tuple[Path, int]:
    """A raw file of 4*size bytes with size/2 of random data in evenly spread extents."""
    virtual, data = 4 * size, size // 2
    extent = max(64 << 10, min(4 * MiB, data // 8)) // 4096 * 4096
    count = max(1, data // extent)
    stride = virtual // count
    path = work / "data" / f"sparse-{size}.bin"
    if path.exists() and path.stat().st_size == virtual:
        return path, virtual
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as handle:
        for index in range(count):
            handle.seek(index * stride)
            handle.write(os.urandom(extent))
        handle.truncate(virtual)
    os.replace(tmp, path)
    return path, virtual


def allocated(path: Path) -> int:
    return os.stat(path).st_blocks * 512


def run(ctx: Context) -> ScenarioResult:
    size = ctx.opts.size
    result = ScenarioResult(NAME, TITLE, size, ctx.opts.runs)
    sparse, virtual = sparse_file(ctx.work, size)
    dense = ctx.random_file(size // 2, "dense")
    site = ctx.chute()
    images = {
        "sparse": (clients.upload(site.api.url, str(sparse), ctx.digest(sparse), virtual),
                   allocated(sparse)),
        "dense": (clients.upload(site.api.url, str(dense), ctx.digest(dense), size // 2),
                  allocated(dense)),
    }
    store_alloc = allocated(clients.stored_path(site.api.url, images["sparse"][0]))
    http_primitives: set[str] = set()

    def boot(kind: str, direct: bool) -> Sample:
        image_id, source_alloc = images[kind]
        compute = site.compute(direct)
        booted = boot_once(compute, site.instances(direct), image_id,
                           "file" if direct else "http")
        if kind == "sparse" and not direct:
            http_primitives.add(str(booted.transfer.get("primitive") or "stream"))
        return Sample(booted.seconds, {"base alloc MiB": booted.base_alloc / MiB,
                                       "alloc ratio": booted.base_alloc / source_alloc,
                                       "fetch s": float(booted.transfer.get("seconds") or 0.0),
                                       "compute CPU s": booted.cpu})

    cases = [
        Case("sparse_file", "boot, sparse image, via file", lambda: boot("sparse", True),
             unit="s"),
        Case("dense_file", "boot, dense image, via file", lambda: boot("dense", True), unit="s"),
        Case("sparse_http", "boot, sparse image, via HTTP", lambda: boot("sparse", False),
             unit="s"),
        Case("dense_http", "boot, dense image, via HTTP", lambda: boot("dense", False),
             unit="s"),
    ]
    targets = [
        Target("time sparse / dense, via file", "sparse_file", "dense_file", "<=", 1.5),
        Target("time sparse / dense, via HTTP", "sparse_http", "dense_http", "<=", 1.5),
        Target("base alloc / source alloc, sparse via file", "sparse_file", None, "<=", 1.1,
               metric="alloc ratio"),
        Target("base alloc / source alloc, sparse via HTTP", "sparse_http", None, "<=", 1.1,
               metric="alloc ratio"),
    ]
    cold_keys = {"sparse_file", "dense_file", "sparse_http", "dense_http"}
    cases += cold_cases(cases, cold_keys)
    targets += cold_targets(targets, cold_keys)
    measure(result, cases, targets, between=clients.settle)
    result.notes.append(
        f"sparse image: {virtual / MiB:.0f} MiB virtual, source allocates "
        f"{images['sparse'][1] / MiB:.0f} MiB; chute's store allocated {store_alloc / MiB:.0f} "
        f"MiB for it; its HTTP fetch used: {', '.join(sorted(http_primitives)) or 'n/a'}")
    for image_id, _ in images.values():
        clients.delete_image(site.api.url, image_id)
    return result
