"""Cost of an image list by the size of its query: server CPU-milliseconds per request (all of
chute-api's processes, front end included), for queries from a bare `GET /v2/images` to the
largest ones the limits let through, and the 700-byte `sort=id,id,...&marker=` that used to
burn minutes of CPU in one worker (issue 18, item 2: now a 400 naming the limit).

CPU time rather than wall time: on a shared machine it varies much less with the load.
"""

from __future__ import annotations

import http.client
from concurrent.futures import ThreadPoolExecutor
from typing import Callable
from urllib.parse import urlsplit

from bench import clients
from bench.context import Context
from bench.harness import Case, Sample, ScenarioResult, Target, measure
from bench.procs import cpu_seconds

NAME = "list_cost"
TITLE = "Image list: server CPU ms per request by query size"
REQUESTS = 200
SORT_KEYS = ("name", "status", "container_format", "disk_format", "size", "id", "created_at",
             "updated_at")


def queries(marker: str) -> dict[str, tuple[str, int]]:
    """label -> (query, expected status)."""
    all_keys = ",".join(f"{key}:{'asc' if n % 2 else 'desc'}" for n, key in enumerate(SORT_KEYS))
    names = ",".join(f"bench-list-{n:05d}" for n in range(100))
    return {
        "bare": ("", 200),
        "every sort key + marker": (f"?sort={all_keys}&marker={marker}&limit=100", 200),
        "100-value in: filter + marker": (f"?name=in:{names}&sort={all_keys}&marker={marker}",
                                          200),
        "sort=id,id,... (refused)": ("?sort=" + ",".join(["id"] * 170) + f"&marker={marker}",
                                     400),
    }


def cpu_ms_per_request(site_pids: Callable[[], list[int]], base: str, query: str,
                       status: int) -> Sample:
    parts = urlsplit(base)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    pids = site_pids()
    before = cpu_seconds(pids)
    try:
        for _ in range(REQUESTS):
            conn.request("GET", f"/v2/images{query}")
            resp = conn.getresponse()
            resp.read()
            if resp.status != status:
                raise clients.BenchError(f"GET /v2/images{query[:60]}... -> {resp.status}, "
                                         f"expected {status}")
            if resp.getheader("connection", "").lower() == "close":
                conn.close()
    finally:
        conn.close()
    used = cpu_seconds(pids) - before
    return Sample(1000 * used / REQUESTS, {"query bytes": float(len(query))})


def run(ctx: Context) -> ScenarioResult:
    result = ScenarioResult(NAME, TITLE, 0, ctx.opts.runs)
    site = ctx.chute()
    base = site.api.url
    images = max(20, ctx.opts.api_images // 5)
    with ThreadPoolExecutor(8) as pool:
        ids = list(pool.map(lambda n: clients.create_image(base, f"bench-list-{n:05d}"),
                            range(images)))
    cases = []
    for n, (label, (query, status)) in enumerate(queries(ids[len(ids) // 2]).items()):
        cases.append(Case(f"q{n}", f"{label} ({len(query)} B)",
                          lambda q=query, s=status: cpu_ms_per_request(site.api.pids, base, q, s),
                          unit="CPU ms/req"))
    targets = [Target(f"{case.label} / bare", case.key, "q0") for case in cases[1:]]
    measure(result, cases, targets)
    result.notes.append(f"{images} more images in the database, {REQUESTS} sequential "
                        "keep-alive requests per case and run")
    return result
