"""boot storm: 8 boots of one image at once on one host, beside one boot alone.

The image cache takes a per-image lock, so the 8 boots must cause exactly one transfer (counted
as "Successfully transferred using" lines in the compute log) and finish in about the time of
one boot: the other 7 wait for the base, then only make their instance disks.
"""

from __future__ import annotations

import time

from bench import clients
from bench.context import Context
from bench.harness import Case, Sample, ScenarioResult, Target, measure
from bench.scenarios._boot import TRANSFER_LINE, boot_once, forget_base

NAME = "boot_storm"
TITLE = "boot storm: 8 concurrent boots of one image vs one boot alone"
STORM = 8


def run(ctx: Context) -> ScenarioResult:
    size = ctx.opts.size
    result = ScenarioResult(NAME, TITLE, size, ctx.opts.runs)
    path = ctx.random_file(size)
    site = ctx.chute()
    image_id = clients.upload(site.api.url, str(path), ctx.digest(path), size)
    compute = site.compute(direct=True)
    instances = site.instances(True)

    def storm() -> Sample:
        offset = compute.log_size()
        seconds, ids = clients.boot_many(compute.url, image_id,
                                         [clients.unique("bench-storm") for _ in range(STORM)])
        time.sleep(0.1)  # let the log handler flush
        transfers = compute.log_since(offset).count(TRANSFER_LINE)
        for server_id in ids:
            clients.delete_server(compute.url, server_id)
        forget_base(instances, image_id)
        return Sample(seconds, {"transfers": float(transfers)})

    def single() -> Sample:
        offset = compute.log_size()
        booted = boot_once(compute, instances, image_id, "file")
        time.sleep(0.1)
        return Sample(booted.seconds,
                      {"transfers": float(compute.log_since(offset).count(TRANSFER_LINE))})

    cases = [
        Case("storm", f"{STORM} concurrent boots, all ACTIVE", storm, unit="s"),
        Case("single", "one boot alone", single, unit="s"),
    ]
    targets = [
        Target(f"time {STORM} boots / one boot", "storm", "single", "<=", 1.5),
        Target(f"transfers during {STORM} boots", "storm", None, "==", 1.0, metric="transfers"),
    ]
    measure(result, cases, targets, between=clients.settle)
    clients.delete_image(site.api.url, image_id)
    return result
