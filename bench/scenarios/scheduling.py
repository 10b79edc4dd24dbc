"""scheduling throughput: server creates per second through chute-compute-api, fake driver,
three agents; SQLite vs PostgreSQL, one API node vs two behind HAProxy.

A sample is BURST creates posted at once (BURST client threads) and the seconds until every
one is ACTIVE: what the API nodes record, schedule, claim and dispatch, and the agents build
with the fake driver (no image copy: the agents have the image's base already after the first
round, and a fake guest costs nothing). The servers are deleted between samples, untimed.
The PostgreSQL cluster is the tests' private one (tests/helpers/postgres.py), the load
balancer the tests' HAProxy (tests/helpers/balancer.py): one set-up for both.

Each sample also records the CPU the burst cost: the API nodes' own, the three agents', and
the whole machine's (agents, PostgreSQL, HAProxy, chute-api and this client share its
cores). Spread perfectly over every core, that work bounds what any number of API nodes
could reach here ("CPU-bound creates/s"); its ratio to one node's creates/s is the ceiling
of the two-node target on this machine, printed beside it. Each node runs one worker, so one
node is one core's worth of API and a second node has a core to use.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import clients
from bench.context import Context
from bench.harness import Case, Sample, ScenarioResult, Target, measure
from bench.procs import Service, cpu_seconds, free_port, machine_cpu_seconds
from tests.helpers.balancer import Balancer
from tests.helpers.postgres import Cluster

NAME = "scheduling"
TITLE = "scheduling throughput: creates/s, fake driver, 3 hosts (SQLite/PostgreSQL, 1/2 nodes)"
BURST = 24
HOSTS = 3


@dataclass
class Cloud:
    """API nodes (behind `balancer` when two), their agents, and the URL clients use."""

    nodes: list[Service]
    agents: list[Service]
    balancer: Balancer | None

    @property
    def url(self) -> str:
        return self.balancer.url if self.balancer else self.nodes[0].url

    def stop(self) -> None:
        for service in [*self.agents, *self.nodes]:
            service.stop()
        if self.balancer is not None:
            self.balancer.stop()


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(0o600)  # the PostgreSQL URL carries a password
    return path


def _node(home: Path, database: str, glance: str) -> Service:
    port = free_port()
    conf = _write(home / "chute-compute-api.conf", f"""\
[DEFAULT]
bind_host = 127.0.0.1
bind_port = {port}
osapi_compute_workers = 1
log_file = {home / 'chute-compute-api.log'}

[database]
connection = {database}

[glance]
api_servers = {glance}
""")
    return Service(f"chute-compute-api ({home.name})",
                   [clients.script("chute-compute-api"), "--config-file", str(conf)],
                   home / "out.log", port, app_log=home / "chute-compute-api.log")


def _agent(home: Path, host: str, api: str, glance: str) -> Service:
    port = free_port()
    conf = _write(home / "chute-compute.conf", f"""\
[DEFAULT]
host = {host}
bind_host = 127.0.0.1
bind_port = {port}
instances_path = {home / 'instances'}
log_file = {home / 'chute-compute.log'}
report_interval = 2

[compute_api]
url = {api}

[glance]
api_servers = {glance}

[image_cache]
manager_interval = 0
""")
    return Service(f"agent {host} ({home.parent.name})",
                   [clients.script("chute-compute"), "--config-file", str(conf)],
                   home / "out.log", port, app_log=home / "chute-compute.log")


def _cloud(root: Path, database: str, nodes: int, glance: str) -> Cloud:
    apis = [_node(root / f"api{n}", database, glance).start("/v2.1") for n in range(nodes)]
    balancer = None
    if nodes > 1:
        balancer = Balancer(root, [f"127.0.0.1:{api.port}" for api in apis], "/v2.1").start()
    cloud = Cloud(apis, [], balancer)
    cloud.agents = [_agent(root / f"host{n}", f"{root.name}-host{n}", cloud.url, glance)
                    .start("/") for n in range(HOSTS)]
    _wait_hosts(cloud.url, HOSTS)
    return cloud


def _wait_hosts(url: str, count: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = clients.call("GET", f"{url}/v2.1/os-hypervisors")["hypervisors"]
        if sum(h.get("state") == "up" for h in found) >= count:
            return
        time.sleep(0.2)
    raise RuntimeError(f"fewer than {count} hosts registered at {url}")


def _burst(cloud: Cloud, image_id: str) -> Sample:
    url = cloud.url
    def post(name: str) -> Any:
        return clients.call("POST", f"{url}/v2.1/servers",
                            {"server": {"name": name, "imageRef": image_id, "flavorRef": "1"}},
                            expect=(202,))["server"]["id"]

    names = [clients.unique("sched") for _ in range(BURST)]
    api_pids = [pid for node in cloud.nodes for pid in node.pids()]
    agent_pids = [pid for agent in cloud.agents for pid in agent.pids()]
    api_cpu, machine_cpu = cpu_seconds(api_pids), machine_cpu_seconds()
    agents_cpu = cpu_seconds(agent_pids)
    started = time.perf_counter()
    with ThreadPoolExecutor(BURST) as pool:
        ids = set(pool.map(post, names))
    while True:
        servers = clients.call("GET", f"{url}/v2.1/servers/detail")["servers"]
        states = {s["id"]: s["status"] for s in servers if s["id"] in ids}
        if any(status == "ERROR" for status in states.values()):
            raise RuntimeError(f"a server went to ERROR: {states}")
        if len(states) == len(ids) and set(states.values()) == {"ACTIVE"}:
            break
        time.sleep(0.01)
    seconds = time.perf_counter() - started
    api_cpu = cpu_seconds(api_pids) - api_cpu
    agents_cpu = cpu_seconds(agent_pids) - agents_cpu
    machine_cpu = machine_cpu_seconds() - machine_cpu
    for server_id in ids:
        clients.call("DELETE", f"{url}/v2.1/servers/{server_id}", expect=(204, 404))
    cores = os.cpu_count() or 1
    return Sample(BURST / seconds, {"API CPU s": api_cpu, "agents CPU s": agents_cpu,
                                    "machine CPU s": machine_cpu,
                                    "CPU-bound creates/s": BURST * cores / machine_cpu})


def run(ctx: Context) -> ScenarioResult:
    result = ScenarioResult(NAME, TITLE, 0, ctx.opts.runs)
    site = ctx.chute()
    data = ctx.random_file(1 << 20, "sched")
    image_id = clients.upload(site.api.url, str(data), ctx.digest(data), 1 << 20)
    root = ctx.scratch("scheduling")
    postgres = Cluster.create(root / "postgres")
    clouds: dict[str, Cloud] = {}
    try:
        clouds["sqlite"] = _cloud(root / "sqlite", f"sqlite:///{root / 'compute.sqlite'}", 1,
                                  site.api.url)
        clouds["pg1"] = _cloud(root / "pg1", postgres.fresh_database("one"), 1, site.api.url)
        clouds["pg2"] = _cloud(root / "pg2", postgres.fresh_database("two"), 2, site.api.url)
        for cloud in clouds.values():  # the first boot on each host fetches the image
            _burst(cloud, image_id)
        cases = [
            Case("sqlite", f"{BURST} creates, SQLite, one API node",
                 lambda: _burst(clouds["sqlite"], image_id), unit="creates/s"),
            Case("pg1", f"{BURST} creates, PostgreSQL, one API node",
                 lambda: _burst(clouds["pg1"], image_id), unit="creates/s"),
            Case("pg2", f"{BURST} creates, PostgreSQL, two API nodes behind HAProxy",
                 lambda: _burst(clouds["pg2"], image_id), unit="creates/s"),
        ]
        targets = [
            Target("creates/s two nodes / one node (PostgreSQL)", "pg2", "pg1", ">=", 1.6),
            Target("ceiling of that on this machine: CPU-bound creates/s / one node's creates/s",
                   "pg1", "pg1", metric="CPU-bound creates/s", metric_b="value"),
            Target("API nodes' share of the machine's CPU (one node)", "pg1", "pg1",
                   metric="API CPU s", metric_b="machine CPU s"),
            Target("creates/s PostgreSQL / SQLite (one node)", "pg1", "sqlite", ">=", None),
        ]
        measure(result, cases, targets)
    finally:
        for cloud in clouds.values():
            cloud.stop()
        postgres.stop()
        clients.delete_image(site.api.url, image_id)
    os.sync()
    return result
