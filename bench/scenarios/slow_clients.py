"""Slow clients: a normal client's p99 on both services, alone and beside 256 slow connections
on each service (trickled heads, half heads, stalled JSON bodies; bench/slowloris.py).

Before the HAProxy front end (chute.front_end), 16 such connections froze chute-api and 8
froze chute-compute: the normal client's requests timed out.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from bench.context import Context
from bench.harness import Case, Sample, ScenarioResult, Target, measure
from bench.slowloris import SlowClients, p99, timed_requests

NAME = "slow_clients"
TITLE = "Slow clients: normal-client p99 beside 256 slow connections on each service"
SLOW = 256
TIMEOUT = 5.0  # a normal request that takes longer counts as this long (it failed)


def run(ctx: Context) -> ScenarioResult:
    result = ScenarioResult(NAME, TITLE, 0, ctx.opts.runs)
    site = ctx.chute()
    compute = site.compute(direct=True)
    urls = [f"{site.api.url}/v2/images", f"{compute.url}/v2.1/servers"]
    seconds = ctx.opts.api_seconds

    def normal_client() -> Sample:
        with ThreadPoolExecutor(len(urls)) as pool:
            api, agent = pool.map(lambda url: timed_requests(url, seconds, TIMEOUT), urls)
        return Sample(1000 * max(p99(api), p99(agent)),
                      {"api p99 ms": 1000 * p99(api), "compute p99 ms": 1000 * p99(agent),
                       "requests": float(len(api) + len(agent))})

    def beside_slow_clients() -> Sample:
        attackers = [SlowClients("127.0.0.1", site.api.port, "/v2/images", SLOW),
                     SlowClients("127.0.0.1", compute.port, "/v2.1/servers", SLOW)]
        for attacker in attackers:
            attacker.start()
        try:
            return normal_client()
        finally:
            for attacker in attackers:
                attacker.stop()

    cases = [
        Case("alone", "normal client alone (p99 of both services)", normal_client, unit="ms"),
        Case("slow", f"normal client beside {SLOW} slow connections per service",
             beside_slow_clients, unit="ms"),
    ]
    targets = [
        Target("p99 beside slow clients (ms)", "slow", None, "<=", 1000.0),
        Target("p99 beside slow clients / alone", "slow", "alone"),
    ]
    measure(result, cases, targets)
    result.notes.append(f"{seconds:g} s of sequential GET /v2/images and GET /v2.1/servers per "
                        f"run; a failed or {TIMEOUT:g} s request counts as {TIMEOUT:g} s")
    return result
