"""API: image-show and image-list with 1,000 images in the database, 32 concurrent keep-alive
connections for 10 s, chute beside Glance 33 under the same load.

image-list is `GET /v2/images` with the default page size (25 on both), i.e. what every
listing client asks first; image-show is `GET /v2/images/{id}` of one image.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from bench import clients, loadgen
from bench.context import Context
from bench.harness import Case, Sample, ScenarioResult, Target, measure

NAME = "api_load"
TITLE = "API: image-show and image-list, 1,000 images, 32 connections, vs Glance 33"


def populate(base: str, count: int) -> str:
    """Create `count` queued images (8 at a time); -> the id of one of them."""
    with ThreadPoolExecutor(8) as pool:
        ids = list(pool.map(lambda i: clients.create_image(base, f"bench-api-{i:05d}"),
                            range(count)))
    return ids[len(ids) // 2]


def run(ctx: Context) -> ScenarioResult:
    opts = ctx.opts
    result = ScenarioResult(NAME, TITLE, 0, opts.runs)
    wrk = loadgen.wrk_binary(opts.install)
    site = ctx.chute()
    peer_skip = ctx.peer_skip()
    with ThreadPoolExecutor(2) as pool:  # both databases filled at once: half the set-up time
        chute_job = pool.submit(populate, site.api.url, opts.api_images)
        peer_job = pool.submit(populate, ctx.peer.service.url, opts.api_images) \
            if peer_skip is None else None
        chute_id = chute_job.result()
        peer_id = peer_job.result() if peer_job else ""
    tools: set[str] = set()

    def hit(url: str) -> Sample:
        got = loadgen.load(url, opts.api_connections, opts.api_seconds, wrk)
        tools.add(got.tool)
        if got.errors:
            raise clients.BenchError(f"{got.errors} failed requests to {url}")
        return Sample(got.requests_per_s, {"p99 ms": got.p99_ms})

    def peer_url(path: str) -> str:
        return ctx.peer.service.url + path

    cases = [
        Case("chute_show", "chute image-show", lambda: hit(f"{site.api.url}/v2/images/{chute_id}"),
             unit="req/s"),
        Case("glance_show", "Glance 33 image-show",
             lambda: hit(peer_url(f"/v2/images/{peer_id}")), unit="req/s", side="peer",
             skip=peer_skip),
        Case("chute_list", "chute image-list (first page)",
             lambda: hit(f"{site.api.url}/v2/images"), unit="req/s"),
        Case("glance_list", "Glance 33 image-list (first page)",
             lambda: hit(peer_url("/v2/images")), unit="req/s", side="peer", skip=peer_skip),
    ]
    targets = [
        Target("image-show req/s chute / Glance", "chute_show", "glance_show", ">=", 3.0),
        Target("image-list req/s chute / Glance", "chute_list", "glance_list", ">=", 3.0),
        Target("image-show p99 chute / Glance", "chute_show", "glance_show", metric="p99 ms"),
        Target("image-list p99 chute / Glance", "chute_list", "glance_list", metric="p99 ms"),
    ]
    measure(result, cases, targets)
    result.notes.append(f"{opts.api_images} images per service, {opts.api_connections} "
                        f"connections, {opts.api_seconds:g} s per run, load by "
                        f"{', '.join(sorted(tools)) or 'n/a'}")
    return result
