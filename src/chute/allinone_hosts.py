"""`chute up --hosts N`: a small cloud on one machine, each hypervisor host in its namespaces.

What issue 13 runs on many machines, here in one command: chute-api and chute-compute-api in
the machine's own namespaces, listening on the address of a private bridge
(chute.host_namespaces), and N chute-compute agents, each in its own network namespace (its
own address on that bridge) and mount namespace. The store is bind-mounted at a different path
on each host (DATA_DIR/hosts/<host>/store), and the machine's DATA_DIR/store is hidden there,
so each agent copies from where its own configuration says the store is mounted; the last host
mounts nothing and fetches over HTTP. So anyone can watch the scheduler spread a boot storm,
one transfer per host, by file or by HTTP.

Root only (namespaces, mounts, a bridge), said in one line otherwise. As with `chute up`, the
configs are written on the first start and kept; the subnet is kept too (DATA_DIR/subnet), so
the URLs in clouds.yaml and openrc stay right. Ctrl-C or SIGTERM stops every service and
removes the namespaces, the mounts and the bridge.
"""

from __future__ import annotations

import ctypes
import json
import os
import secrets
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from chute import host_namespaces
from chute.allinone import (
    DATA,
    SECRET,
    _bind_address,
    _lock,
    _persistent,
    _port_busy,
    _stop,
    _wait_ready,
    _write_once,
)
from chute.auth.provision import write_identity
from chute.host_namespaces import Mount, Topology, TopologyError

API_PORT = 9292
COMPUTE_PORT = 8774  # the compute API's, and every agent's on its own address
_PR_SET_PDEATHSIG = 1
RAM_RATIO = 0.0064  # of the fake driver's 800000 MB: 5120 MB per host
SERVICES = {"chute-api": "chute.images.main", "chute-compute-api": "chute.compute.cluster.main",
            "chute-compute": "chute.compute.main"}


@dataclass(frozen=True)
class HostsLayout:
    """Where everything of a `chute up --hosts` lives under DATA_DIR."""

    root: Path

    @property
    def store(self) -> Path:
        return self.root / "store"

    @property
    def logs(self) -> Path:
        return self.root / "log"

    def conf(self, service: str) -> Path:
        return self.root / f"{service}.conf"

    def host(self, name: str) -> Path:
        return self.root / "hosts" / name

    def host_conf(self, name: str) -> Path:
        return self.host(name) / "chute-compute.conf"

    def mountpoint(self, name: str) -> Path:
        """Where host `name` sees the store (a different path on each host)."""
        return self.host(name) / "store"


def host_names(count: int) -> list[str]:
    return [f"host{i}" for i in range(1, count + 1)]


class _Refused(Exception):
    """`chute up --hosts` cannot start as asked; the message says why and what to do."""


def _fail(message: str) -> int:
    print(f"chute up: {message}", file=sys.stderr, flush=True)
    return 1


def main(data_dir: str | os.PathLike[str], hosts: int, api_port: int | None = None,
         compute_port: int | None = None) -> int:
    """Run the cluster until Ctrl-C/SIGTERM or until one of its services exits."""
    if hosts < 1:
        return _fail(f"--hosts {hosts}: at least one host is needed")
    why = host_namespaces.problem()
    if why is not None:
        return _fail(f"--hosts: {why}; run it as root, or run `chute up` without --hosts")
    root = Path(data_dir).resolve()
    lock = _lock(root)
    if lock is None:
        return _fail(f"{root} is already used by another chute up; stop it first or use "
                     "another --data-dir")
    try:
        return _run(HostsLayout(root), hosts, api_port, compute_port)
    except (_Refused, TopologyError) as exc:
        return _fail(str(exc))
    finally:
        lock.close()


def _kept_subnet(lay: HostsLayout) -> str | None:
    path = lay.root / "subnet"
    return path.read_text(encoding="utf-8").strip() if path.exists() else None


def _check_kept(lay: HostsLayout, hosts: int) -> None:
    """A data dir keeps the shape of its first start: its configs were written for it."""
    if lay.conf("chute-compute").exists() and not lay.conf("chute-compute-api").exists():
        raise _Refused(f"{lay.root} was first started without --hosts; use another "
                       "--data-dir")
    kept = sorted(p.name for p in (lay.root / "hosts").glob("*") if p.is_dir()) \
        if (lay.root / "hosts").is_dir() else []
    if kept and kept != sorted(host_names(hosts)):
        raise _Refused(f"{lay.root} was first started with --hosts {len(kept)}; start it so "
                       "again, or use another --data-dir")


def write_configs(lay: HostsLayout, topo: Topology, hosts: int, api_port: int,
                  compute_port: int) -> None:
    """chute-api.conf, chute-compute-api.conf and each host's chute-compute.conf, on the first
    start (kept afterwards); the identity files (tokens, clouds.yaml, openrc)."""
    fs_id = _persistent(lay.root / "filesystem-id", str(uuid.uuid4()))
    token = _persistent(lay.root / "service-token", secrets.token_hex(16), SECRET)
    api_url = f"http://{topo.gateway}:{api_port}"
    compute_url = f"http://{topo.gateway}:{compute_port}"
    identity = write_identity(lay.root, api_url, compute_url, token)
    auth = f"auth_strategy = tokens\ntokens_file = {identity.tokens_file}"
    metadata = lay.root / "store-metadata.json"
    _write_once(metadata, json.dumps({"id": fs_id, "mountpoint": str(lay.store)}) + "\n", DATA)
    _write_once(lay.conf("chute-api"), f"""\
[DEFAULT]
bind_host = {topo.gateway}
bind_port = {api_port}
{auth}
log_file = {lay.logs / "chute-api.log"}

[glance_store]
filesystem_store_datadir = {lay.store / "images"}
filesystem_store_metadata_file = {metadata}
""", SECRET)
    _write_once(lay.conf("chute-compute-api"), f"""\
[DEFAULT]
bind_host = {topo.gateway}
bind_port = {compute_port}
{auth}
log_file = {lay.logs / "chute-compute-api.log"}

[database]
connection = sqlite:///{lay.root / "compute-api.sqlite"}

[glance]
api_servers = {api_url}
service_token = {token}

[quota]
# Room for a boot storm filling every host with m1.tiny (Nova's defaults: 10 servers and 20
# cores per project).
instances = {10 * hosts}
cores = {10 * hosts}
""", SECRET)
    names = host_names(hosts)
    for index, name in enumerate(names):  # topo.hosts[index] is host `name`
        home = lay.host(name)
        (home / "instances").mkdir(mode=0o750, parents=True, exist_ok=True)
        filesystem = ""
        if _mounts_store(lay, name, names):
            filesystem = (f"\n[image_file_url]\nfilesystems = shared\n\n"
                          f"[image_file_url:shared]\nid = {fs_id}\n"
                          f"mountpoint = {lay.mountpoint(name)}\n")
        _write_once(lay.host_conf(name), f"""\
[DEFAULT]
host = {name}
bind_host = {topo.hosts[index].address}
bind_port = {compute_port}
instances_path = {home / "instances"}
{auth}
log_file = {lay.logs / f"{name}.log"}
compute_driver = fake
# The fake driver reports 800000 MB of RAM; this fraction makes each host a 5 GiB one (ten
# m1.tiny), so a boot storm fills the hosts that mount the store and spreads to the others.
ram_allocation_ratio = {RAM_RATIO}

[compute_api]
url = {compute_url}

[glance]
api_servers = {api_url}
allowed_direct_url_schemes = file
service_token = {token}
{filesystem}""", SECRET)


def _mounts_store(lay: HostsLayout, name: str, names: list[str]) -> bool:
    """Whether host `name` mounts the store: as its kept config says; on the first start,
    every host but the last (one host alone mounts it)."""
    if lay.host_conf(name).exists():
        return "[image_file_url:shared]" in lay.host_conf(name).read_text(encoding="utf-8")
    return name != names[-1] or len(names) == 1


def _command(service: str) -> list[str]:
    script = Path(sys.executable).parent / service
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", f"import sys, {SERVICES[service]} as m; sys.exit(m.main())"]


def _topology(lay: HostsLayout, hosts: int) -> Topology:
    """The bridge in the kept subnet (a free one on the first start), one namespaced host per
    name, the store bound at the host's own path unless its config mounts nothing."""
    topo = Topology.create(_kept_subnet(lay))
    try:
        (lay.root / "subnet").write_text(f"{topo.subnet}\n", encoding="utf-8")
        names = host_names(hosts)
        for name in names:
            mounts = [Mount(lay.store, lay.mountpoint(name))] \
                if _mounts_store(lay, name, names) else []
            topo.add_host(name, mounts, hidden=[lay.store])
    except BaseException:
        topo.close()
        raise
    return topo


def _run(lay: HostsLayout, hosts: int, api_port: int | None, compute_port: int | None) -> int:
    _check_kept(lay, hosts)
    for directory in (lay.root, lay.store, lay.store / "images", lay.logs):
        directory.mkdir(mode=0o750, parents=True, exist_ok=True)
    topo = _topology(lay, hosts)
    try:
        write_configs(lay, topo, hosts, api_port or API_PORT, compute_port or COMPUTE_PORT)
        return _serve(lay, topo)
    finally:
        topo.close()


def _serve(lay: HostsLayout, topo: Topology) -> int:
    stopping = False

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    for service in ("chute-api", "chute-compute-api"):
        address, port = _bind_address(lay.conf(service))
        busy = _port_busy(address, port)
        if busy is not None:
            raise _Refused(f"port {port} on {address} ({service}, bind_port in "
                           f"{lay.conf(service)}) {busy}; nothing was started")
    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    procs: list[tuple[str, subprocess.Popen[bytes]]] = []
    failure: str | None = None
    try:
        for service in ("chute-api", "chute-compute-api"):
            url = "http://{}:{}".format(*_bind_address(lay.conf(service)))
            procs.append((service, _start([*_command(service), "--config-file",
                                           str(lay.conf(service))])))
            _wait_ready(procs[-1][1], url + "/", service)
            print(f"{service} listening on {url}  (config {lay.conf(service)}, log "
                  f"{lay.logs / (service + '.log')})", flush=True)
        for host in topo.hosts:
            argv = [*_command("chute-compute"), "--config-file", str(lay.host_conf(host.name))]
            url = "http://{}:{}".format(*_bind_address(lay.host_conf(host.name)))
            procs.append((host.name, _start(host.command(argv))))
            _wait_ready(procs[-1][1], url + "/", f"chute-compute on {host.name}")
            where = (f"the store at {lay.mountpoint(host.name)}"
                     if host.mounts else "no store mounted: fetches over HTTP")
            print(f"{host.name}: chute-compute agent on {url}, {where}  (log "
                  f"{lay.logs / (host.name + '.log')})", flush=True)
        print(f"data in {lay.root}; . {lay.root / 'openrc'}; Ctrl-C stops them all",
              flush=True)
        while not stopping:
            dead = [(name, p) for name, p in procs if p.poll() is not None]
            if dead:
                failure = f"{dead[0][0]} exited with status {dead[0][1].returncode}"
                break
            time.sleep(0.2)
    except RuntimeError as exc:
        failure = str(exc)
    finally:
        _stop([p for _name, p in reversed(procs)])
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if failure is not None:
        print(f"chute up: {failure}; see the logs in {lay.logs}", file=sys.stderr, flush=True)
        return 1
    print(f"stopped chute-api, chute-compute-api and {len(topo.hosts)} agents; namespaces "
          "removed", flush=True)
    return 0


def _start(argv: list[str]) -> subprocess.Popen[bytes]:
    """A service that gets SIGTERM if this process dies, even by SIGKILL: nothing keeps
    running (and holding the bridge's ports) in namespaces the next start sweeps away."""
    return subprocess.Popen(argv, stdin=subprocess.DEVNULL, preexec_fn=_term_with_parent)


def _term_with_parent() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
