"""download: `chute image-download` and a raw GET, beside Glance 33 and nginx.

nginx serves the very file chute's store holds, to the same reader (http.client, 1 MiB
`readinto`), so "1x nginx" (issue 15) means chute's download path, front end included, costs
nothing beyond sendfile(2).
nginx / Glance, reported beside it, is therefore the ceiling of "raw GET >= 3x Glance's": a
server that sends the file no faster than nginx cannot be more than that many times Glance.
Likewise `cp` of the stored file then `sync` of the copy is the floor of a download that ends
durably on disk, as `chute image-download` does (it fsyncs before the rename; glanceclient
does not): durable cp / Glance CLI is the ceiling of "CLI >= 3x Glance CLI", and issue 15 asks
the CLI for 0.8x of it.

The stored file is read once before the cases: the upload wrote it with O_DIRECT, so without
that the first warm round would read it from disk. On this VM it was also the slowest read of
all: the guest hands freed memory back to the host at once (virtio-balloon free page reporting,
/sys/module/page_reporting: order 9, min_free_ms 0), and the first copy out of a page-cache page
on such memory pays the host's faults. Whoever copies first pays: HAProxy's recv in chute's
path (perf: 72% of it in _copy_to_iter; 2.6-2.7 CPU-s for the GiB instead of 0.25-0.36, in
round 1 of two runs, and now and then in a cold round), the reader in nginx's. One such round
moves a 5-run median; the CPU columns beside the MiB/s show which round it was.
"""

from __future__ import annotations

import resource
from pathlib import Path

from bench import clients
from bench.context import Context
from bench.harness import Case, Sample, ScenarioResult, Target, measure
from bench.nginx import NginxUnavailable
from bench.procs import RssSampler, Service, cpu_seconds
from bench.scenarios._boot import durable_cp, plain_read
from bench.scenarios._cold import cold_cases, cold_targets

NAME = "download"
TITLE = "download: image-download and raw GET, vs Glance 33 and nginx"
MiB = 1 << 20


def uploaded(ctx: Context, base: str, path: Path, size: int) -> str:
    return clients.upload(base, str(path), ctx.digest(path), size)


def _thread_cpu() -> float:
    """CPU seconds of the calling thread: the raw GET's reader, alone of the bench's threads."""
    usage = resource.getrusage(resource.RUSAGE_THREAD)
    return usage.ru_utime + usage.ru_stime


def _front_end_pids(service: Service) -> list[int]:
    """chute's HAProxy among the service's processes (none for nginx or Glance)."""
    found = []
    for pid in service.pids():
        try:
            with open(f"/proc/{pid}/comm") as handle:
                if handle.read().strip() == "haproxy":
                    found.append(pid)
        except OSError:
            continue
    return found


def run(ctx: Context) -> ScenarioResult:
    size = ctx.opts.size
    result = ScenarioResult(NAME, TITLE, size, ctx.opts.runs)
    path = ctx.random_file(size)
    out_dir = ctx.scratch(NAME)
    site = ctx.chute()
    chute_id = uploaded(ctx, site.api.url, path, size)
    peer_skip = ctx.peer_skip()
    peer_id = uploaded(ctx, ctx.peer.service.url, path, size) if peer_skip is None else ""
    store_file = clients.stored_path(site.api.url, chute_id)
    nginx: Service | None = None
    nginx_skip = None
    if not store_file.exists():
        nginx_skip = f"nginx baseline unavailable: chute stored no file at {store_file}"
    else:
        try:
            nginx = ctx.nginx(store_file.parent)
        except NginxUnavailable as exc:
            nginx_skip = f"nginx unavailable: {exc}"

    def cli(argv: list[str], image_id: str, service: Service) -> Sample:
        """The CLI's own CPU (reading, hashing, writing, and its interpreter's start) is
        reported beside the server's, and HAProxy's share of chute's, as for the raw GET."""
        out = out_dir / "out.bin"
        front_end = _front_end_pids(service)
        front_end_cpu = cpu_seconds(front_end)
        with RssSampler(service) as rss:
            seconds, client_cpu = clients.timed_cpu(
                [*argv, "image-download", "--file", str(out), image_id])
        got = out.stat().st_size
        out.unlink()
        if got != size:
            raise clients.BenchError(f"downloaded {got} bytes, expected {size}")
        extra = {"peak RSS MiB": rss.peak / MiB, "server CPU s": rss.cpu,
                 "client CPU s": client_cpu, "server + client CPU s": rss.cpu + client_cpu}
        if front_end:
            extra["front end CPU s"] = cpu_seconds(front_end) - front_end_cpu
        return Sample(size / MiB / seconds, extra)

    def copy() -> Sample:
        """`cp` and `sync`'s own CPU as its client CPU; the kernel's writeback threads,
        which write its dirty pages, are nobody's process here and are not counted."""
        before = clients.children_cpu()
        seconds = durable_cp(store_file, out_dir / "cp.bin", "never")
        cpu = clients.children_cpu() - before
        return Sample(size / MiB / seconds, {"client CPU s": cpu, "server + client CPU s": cpu})

    def raw(url: str, service: Service) -> Sample:
        """The reader shares the machine's 2 cores with the server: its CPU is reported beside
        the server's, and HAProxy's share of chute's (the hop nginx does not have)."""
        front_end = _front_end_pids(service)
        front_end_cpu = cpu_seconds(front_end)
        client_cpu = _thread_cpu()
        with RssSampler(service) as rss:
            seconds = clients.http_read(url, size)
        client_cpu = _thread_cpu() - client_cpu
        extra = {"peak RSS MiB": rss.peak / MiB, "server CPU s": rss.cpu,
                 "client CPU s": client_cpu, "server + client CPU s": rss.cpu + client_cpu}
        if front_end:
            extra["front end CPU s"] = cpu_seconds(front_end) - front_end_cpu
        return Sample(size / MiB / seconds, extra)

    chute_argv = [clients.script("chute"), "--os-image-url", site.api.url]
    cases = [
        Case("chute_cli", "chute image-download --file",
             lambda: cli(chute_argv, chute_id, site.api)),
        Case("glance_cli", "glance image-download --file (Glance 33)",
             lambda: cli(ctx.peer.cli(), peer_id, ctx.peer.service), side="peer",
             skip=peer_skip),
        Case("chute_get", "raw GET from chute (http.client readinto 1 MiB)",
             lambda: raw(f"{site.api.url}/v2/images/{chute_id}/file", site.api)),
        Case("glance_get", "raw GET from Glance 33",
             lambda: raw(f"{ctx.peer.service.url}/v2/images/{peer_id}/file",
                         ctx.peer.service), side="peer", skip=peer_skip),
        Case("durable_cp", "cp of the stored file + sync of the copy (durable, unverified)",
             copy, side="limit",
             skip=None if store_file.exists() else f"chute stored no file at {store_file}"),
        Case("nginx_get", "raw GET of the same file from nginx",
             lambda: raw(f"{nginx.url}/{store_file.name}", nginx), side="limit",  # type: ignore
             skip=nginx_skip),
    ]
    targets = [
        Target("chute CLI / Glance CLI", "chute_cli", "glance_cli", ">=", 3.0),
        Target("ceiling of the 3x CLI goal: durable cp / Glance CLI", "durable_cp",
               "glance_cli"),
        Target("chute CLI / durable cp", "chute_cli", "durable_cp", ">=", 0.8),
        # On shared cores the CLI's pace follows the CPU it needs: the download's whole cost
        # (CLI, HAProxy, worker) against cp + sync's (without the kernel's writeback).
        Target("server + client CPU s chute CLI / durable cp", "chute_cli", "durable_cp",
               metric="server + client CPU s"),
        Target("chute raw GET / Glance raw GET", "chute_get", "glance_get", ">=", 3.0),
        Target("chute raw GET / nginx", "chute_get", "nginx_get", ">=", 1.0),
        # The most "3x Glance's raw GET" can reach is chute at nginx's own speed.
        Target("ceiling of the 3x goal: nginx / Glance raw GET", "nginx_get", "glance_get"),
        Target("chute-api peak RSS / Glance's (raw GET)", "chute_get", "glance_get",
               metric="peak RSS MiB"),
        Target("server CPU s chute / Glance (raw GET)", "chute_get", "glance_get",
               metric="server CPU s"),
        # Where "1x nginx" is won or lost on 2 shared cores: the CPU the whole transfer takes.
        Target("server CPU s chute / nginx (raw GET)", "chute_get", "nginx_get",
               metric="server CPU s"),
        Target("server + client CPU s chute / nginx (raw GET)", "chute_get", "nginx_get",
               metric="server + client CPU s"),
    ]
    # Cold: the stored image is read from disk, as on a freshly uploaded image's first download.
    if store_file.exists():
        plain_read(store_file)  # warm means warm from round 1 (the module docstring)
    cold_keys = {"chute_cli", "glance_cli", "chute_get", "glance_get", "durable_cp", "nginx_get"}
    cases += cold_cases(cases, cold_keys)
    targets += cold_targets(targets, cold_keys)
    measure(result, cases, targets, between=clients.settle)
    clients.delete_image(site.api.url, chute_id)
    if peer_id:
        clients.delete_image(ctx.peer.service.url, peer_id)
    return result
