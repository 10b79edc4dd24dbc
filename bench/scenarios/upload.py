"""upload: `chute image-create --file` and a raw PUT, beside Glance 33 and the upload floor.

An upload has two floors. The hash limit is what any Glance-compatible upload must at least do
to each byte: MD5 (the `checksum`) and SHA-512 (`os_hash_value`), here in two threads over
bytes already in memory, so no I/O at all. The durable write is the other: the upload ends
durably on disk, as `cp` + `sync` of the same file does. The goal of issue 15 is a raw PUT at
0.8x of the lower of the two, measured together in one case ("floor") so that each round's
ratio divides by the min of the same round; each is also reported on its own.

Each upload also reports the CPU-seconds it cost (server and client) as a rate: the size over
those CPU-seconds spread on every core is the most that upload could reach on this machine
("CPU-bound MiB/s"). Its ratio to the hash limit tells whether a missed 0.8x is time lost
waiting (ceiling well above the goal) or CPU spent (ceiling near or below it).

That ceiling assumes the cores are the upload's. On a shared machine they are not: the kernel
shares the CPU between sessions (sched_autogroup) and every process of one run - the
benchmark, its hash limit, chute-api, HAProxy, curl - is in one session, so when other
sessions keep the cores busy the hash limit and the upload get the same CPU share, and the
raw PUT can reach at most the hash limit's CPU-seconds over its own (server + client), the
"CPU-share ceiling" row. 2026-12-07, 1 GiB raw PUTs with load 6-10 on 2 cores: 2.67 / (3.70
+ 0.32) = 0.66 against a measured 0.58 (per thread, CPU-s per GiB: MD5 1.42-1.55, SHA-512
1.05-1.39, the receiving thread 0.34-0.57, HAProxy 0.23-0.39, curl 0.22-0.32, the O_DIRECT
writer 0.13-0.27, blake3-blocks 0.15-0.23).
"""

from __future__ import annotations

import hashlib
import os
import threading
import time

from bench import clients
from bench.context import Context
from bench.harness import Case, Sample, ScenarioResult, Target, measure
from bench.procs import RssSampler
from bench.scenarios._boot import durable_cp
from bench.scenarios._cold import cold_cases, cold_targets

NAME = "upload"
TITLE = "upload: image-create --file and raw PUT, vs Glance 33 and the MD5+SHA-512 limit"
MiB = 1 << 20


def hash_limit(data: bytes) -> tuple[float, float]:
    """(wall, CPU) seconds for MD5 and SHA-512 of `data` in parallel (hashlib drops the GIL)."""
    view = memoryview(data)
    step = 4 * MiB

    def run(algorithm: str) -> None:
        digest = hashlib.new(algorithm)
        for offset in range(0, len(view), step):
            digest.update(view[offset:offset + step])

    threads = [threading.Thread(target=run, args=(name,)) for name in ("md5", "sha512")]
    started, cpu = time.perf_counter(), time.process_time()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - started, time.process_time() - cpu


CPU_BOUND = "CPU-bound MiB/s"
PUT_CPU = "server + client CPU s"


def cpu_bound(size: int, cpu_seconds: float) -> float:
    """The rate the upload could reach if client and server kept every core busy all the time:
    CPU-seconds spent, spread over the cores, is the least wall time it can take."""
    cores = len(os.sched_getaffinity(0))
    return size / MiB / max(cpu_seconds / cores, 1e-9)


def chute_cli(url: str) -> list[str]:
    return [clients.script("chute"), "--os-image-url", url]


def upload_cases(ctx: Context, path, size: int, with_peer_skip: str | None) -> list[Case]:
    md5 = ctx.digest(path)
    site = ctx.chute()

    def sampled(service, base: str, work) -> Sample:
        with RssSampler(service) as rss:
            seconds, client_cpu, image_id = work()
        clients.check_active(base, image_id, md5, size)
        clients.delete_image(base, image_id)
        return Sample(size / MiB / seconds, {"peak RSS MiB": rss.peak / MiB,
                                                "server CPU s": rss.cpu,
                                                "client CPU s": client_cpu,
                                                PUT_CPU: rss.cpu + client_cpu,
                                                CPU_BOUND: cpu_bound(size, rss.cpu + client_cpu)})

    def cli(argv_base: list[str], base: str) -> tuple[float, float, str]:
        name = clients.unique("bench-upload")
        seconds, cpu = clients.timed_cpu([*argv_base, "image-create", "--name", name,
                                          "--disk-format", "raw", "--container-format",
                                          "bare", "--file", str(path)])
        return seconds, cpu, clients.find_image(base, name)["id"]

    def put(base: str) -> tuple[float, float, str]:
        image_id = clients.create_image(base, clients.unique("bench-put"))
        seconds, cpu = clients.curl_put_cpu(base, image_id, str(path))
        return seconds, cpu, image_id

    def peer_service():
        return ctx.peer.service

    cases = [
        Case("chute_cli", "chute image-create --file",
             lambda: sampled(site.api, site.api.url,
                             lambda: cli(chute_cli(site.api.url), site.api.url))),
        Case("glance_cli", "glance image-create --file (Glance 33)",
             lambda: sampled(peer_service(), peer_service().url,
                             lambda: cli(ctx.peer.cli(), peer_service().url)),
             side="peer", skip=with_peer_skip),
        Case("chute_put", "curl -T raw PUT to chute",
             lambda: sampled(site.api, site.api.url, lambda: put(site.api.url))),
        Case("glance_put", "curl -T raw PUT to Glance 33",
             lambda: sampled(peer_service(), peer_service().url,
                             lambda: put(peer_service().url)),
             side="peer", skip=with_peer_skip),
    ]
    return cases


FLOOR = "floor"
HASH_LIMIT = "hash limit MiB/s"
DURABLE_WRITE = "durable write MiB/s"


def run(ctx: Context) -> ScenarioResult:
    size = ctx.opts.size
    result = ScenarioResult(NAME, TITLE, size, ctx.opts.runs)
    path = ctx.random_file(size)
    data = path.read_bytes()
    copy = ctx.scratch(NAME) / "cp.bin"

    def floor() -> Sample:
        seconds, cpu = hash_limit(data)
        hashed = size / MiB / seconds
        written = size / MiB / durable_cp(path, copy, "never")
        return Sample(min(hashed, written), {HASH_LIMIT: hashed, "hash limit CPU s": cpu,
                                             DURABLE_WRITE: written})

    cases = [Case(FLOOR, "upload floor: min(hash limit: MD5 + SHA-512 in memory, 2 threads; "
                  "durable write: cp of the file + sync of the copy)", floor, side="limit")]
    cases += upload_cases(ctx, path, size, ctx.peer_skip())

    def over_hash_limit(label: str, a: str, goal: float | None = None,
                        metric: str = "value") -> Target:
        return Target(label, a, FLOOR, ">=", goal, metric=metric, metric_b=HASH_LIMIT)

    targets = [
        Target("chute CLI / Glance CLI", "chute_cli", "glance_cli", ">=", 3.0),
        Target("chute raw PUT / Glance raw PUT", "chute_put", "glance_put", ">=", 3.0),
        # chute cannot upload faster than the two digests it must compute: these are the most
        # the two 3x goals can reach in this run.
        Target("ceiling of the 3x goals: hash limit / Glance CLI", FLOOR, "glance_cli",
               metric=HASH_LIMIT, metric_b="value"),
        Target("ceiling of the 3x goals: hash limit / Glance raw PUT", FLOOR, "glance_put",
               metric=HASH_LIMIT, metric_b="value"),
        # Issue 15's goal: 0.8x the lower floor of the same round.
        Target("chute raw PUT / min(hash limit, durable write)", "chute_put", FLOOR, ">=", 0.8),
        over_hash_limit("chute raw PUT / hash limit", "chute_put"),
        # Above 1 the hash limit is the lower of the two floors.
        Target("durable write / hash limit", FLOOR, FLOOR, metric=DURABLE_WRITE,
               metric_b=HASH_LIMIT),
        Target("chute raw PUT / durable write", "chute_put", FLOOR, metric_b=DURABLE_WRITE),
        # What the CPU the PUT spent (server + curl) allows at best, against the same limit.
        over_hash_limit("CPU ceiling of the raw PUT / hash limit", "chute_put",
                        metric=CPU_BOUND),
        # The same when the run's CPU share, not the cores, is the limit (the module doc).
        Target("CPU-share ceiling of the raw PUT: hash limit CPU s / (server + client CPU s)",
               FLOOR, "chute_put", metric="hash limit CPU s", metric_b=PUT_CPU),
        over_hash_limit("chute CLI / hash limit", "chute_cli"),
        # Issue 15: the CLI upload within 10% of the raw PUT.
        Target("chute CLI / chute raw PUT", "chute_cli", "chute_put", ">=", 0.9),
        Target("client CPU s chute CLI / curl (raw PUT)", "chute_cli", "chute_put",
               metric="client CPU s"),
        Target("server CPU s chute CLI / raw PUT", "chute_cli", "chute_put",
               metric="server CPU s"),
        Target("chute-api peak RSS / Glance's (raw PUT)", "chute_put", "glance_put",
               metric="peak RSS MiB"),
        Target("server CPU s chute / Glance (raw PUT)", "chute_put", "glance_put",
               metric="server CPU s"),
    ]
    # Cold: the file to upload is read from disk by the client (the hash limit stays in memory).
    cold_keys = {"chute_cli", "chute_put", "glance_cli", "glance_put"}
    cases += cold_cases(cases, cold_keys)
    targets += cold_targets(targets, cold_keys) + [
        Target("cold: chute raw PUT / min(hash limit, durable write)", "chute_put_cold",
               FLOOR, ">=", 0.8),
        over_hash_limit("cold: chute raw PUT / hash limit", "chute_put_cold"),
    ]
    measure(result, cases, targets, between=clients.settle)
    return result
