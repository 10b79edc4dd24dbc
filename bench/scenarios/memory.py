"""memory: peak RSS of chute-api (gunicorn master + workers) while it takes an upload and
serves it back, beside Glance 33's uWSGI master + workers doing the same.

RSS is summed over the service's process tree, sampled every 50 ms from /proc; pages shared
after fork count once per process on both sides. PSS (shared pages split between their
sharers) is reported beside it: chute's workers share the pages their master imported, Glance's
lazy-apps workers load everything after the fork. The upload and download scenarios also record
the peak RSS of every case they run (column "peak RSS MiB"). The idle RSS is also split by
role (the master, its workers summed, chute's HAProxy front end), so a change shows where it
saved: the master's pages count again in every worker forked from it; and so is the RSS at the
peak (the sample with the largest sum), which is where the target is missed or met. Glance
runs with no front end here, so the peak without chute's (HAProxy) is reported beside it.
"""

from __future__ import annotations

from bench import clients
from bench.context import Context
from bench.harness import Case, Sample, ScenarioResult, Target, measure
from bench.procs import RssSampler, Service, pss_bytes, rss_bytes

NAME = "memory"
TITLE = "memory: peak RSS during raw PUT + GET of the image, chute-api vs Glance 33"
MiB = 1 << 20


def run(ctx: Context) -> ScenarioResult:
    size = ctx.opts.size
    result = ScenarioResult(NAME, TITLE, size, ctx.opts.runs)
    path = ctx.random_file(size)
    md5 = ctx.digest(path)
    site = ctx.chute()
    peer_skip = ctx.peer_skip()

    def cycle(service: Service) -> Sample:
        base = service.url
        idle = rss_bytes(service.pids())
        roles = _idle_by_role(service)
        with _RolesAtPeak(service) as rss:
            image_id = clients.upload(base, str(path), md5, size)
            clients.http_read(f"{base}/v2/images/{image_id}/file", size)
        clients.delete_image(base, image_id)
        return Sample(rss.peak / MiB, {"idle MiB": idle / MiB, "peak PSS MiB": rss.peak_pss / MiB,
                                       "processes": float(len(service.pids())), **roles,
                                       **rss.roles})

    cases = [
        Case("chute_rss", "chute-api peak RSS (master + workers)", lambda: cycle(site.api),
             unit="MiB"),
        Case("glance_rss", "Glance 33 peak RSS (uWSGI master + workers)",
             lambda: cycle(ctx.peer.service), unit="MiB", side="peer", skip=peer_skip),
    ]
    targets = [Target("peak RSS chute / Glance", "chute_rss", "glance_rss", "<=", 0.5),
               Target("peak PSS chute / Glance", "chute_rss", "glance_rss",
                      metric="peak PSS MiB"),
               # Glance runs here with no front end of its own (uWSGI's http-socket takes the
               # clients), chute with its HAProxy: the same peak without that process.
               Target("peak RSS chute without its front end / Glance", "chute_rss",
                      "glance_rss", metric="peak without front end MiB", metric_b="value")]
    measure(result, cases, targets, between=clients.settle)
    return result


FRONT_END = "haproxy"


def _idle_by_role(service: Service) -> dict[str, float]:
    """Idle RSS (MiB) of the master, of its workers summed, and of the front end (HAProxy,
    chute only; 0 for Glance, which has none)."""
    return {f"idle {role}": mib for role, mib in _by_role(service.pids()).items()}


def _by_role(pids: list[int]) -> dict[str, float]:
    master, *rest = pids or [0]
    front = [pid for pid in rest if _name(pid) == FRONT_END]
    workers = [pid for pid in rest if pid not in front]
    return {"master MiB": rss_bytes([master]) / MiB, "workers MiB": rss_bytes(workers) / MiB,
            "front end MiB": rss_bytes(front) / MiB}


class _RolesAtPeak(RssSampler):
    """RssSampler whose peak is also split by role, as it was in that very sample."""

    def __init__(self, service: Service) -> None:
        super().__init__(service)
        self.roles: dict[str, float] = {}

    def _sample(self) -> None:
        pids = self.service.pids()
        roles = _by_role(pids)
        total = sum(roles.values()) * MiB
        if total > self.peak:
            self.peak = round(total)
            self.roles = {f"peak {role}": mib for role, mib in roles.items()}
            self.roles["peak without front end MiB"] = total / MiB - roles["front end MiB"]
        self.peak_pss = max(self.peak_pss, pss_bytes(pids))


def _name(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm") as handle:
            return handle.read().strip()
    except OSError:
        return ""
