"""Hypervisor hosts in network and mount namespaces, for the tests of issue 13's cluster.

chute.host_namespaces makes the namespaces (the same code `chute up --hosts` runs); this
module puts chute-api on the topology's bridge address and a chute-compute on each host, the
store bind-mounted at that host's own path, or nowhere. Root only: without root, `topology`
fails the test saying so (never a skip passed off as green).
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from chute import host_namespaces
from chute.host_namespaces import Host, Mount, Topology
from tests.helpers.services import (
    ApiServer,
    ComputeServer,
    compute_defaults,
    free_port,
    prepare_api,
    write_conf,
)

SHARED_FS = "shared-fs-1"  # the store metadata id prepare_api writes


@contextmanager
def topology() -> Iterator[Topology]:
    """A bridge in a free private /24, torn down afterwards whatever happened."""
    why = host_namespaces.problem()
    if why is not None:
        raise AssertionError(f"{why}: the multi-host tests run as root (make test does)")
    topo = Topology.create()
    try:
        yield topo
    finally:
        topo.close()


def prepare_api_on(topo: Topology, root: Path, **overrides: dict[str, Any]) -> ApiServer:
    """A chute-api under `root` listening on the bridge address, where every host reaches it.
    noauth stated explicitly: the address is not a loopback one (the subnet is the test's
    own, reachable from this machine's namespaces only)."""
    root.mkdir(parents=True, exist_ok=True)
    default = {"auth_strategy": "noauth", **overrides.pop("DEFAULT", {})}
    api = prepare_api(root, DEFAULT=default, **overrides)
    sections = _read(api.conf_path)
    sections["DEFAULT"]["bind_host"] = topo.gateway
    write_conf(api.conf_path, sections)
    api.url = f"http://{topo.gateway}:{api.port}"
    return api


def _read(path: Path) -> dict[str, dict[str, Any]]:
    import configparser
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(path)
    sections: dict[str, dict[str, Any]] = {"DEFAULT": dict(parser.defaults())}
    for name in parser.sections():
        sections[name] = {k: v for k, v in parser.items(name, raw=True)
                          if k not in parser.defaults()}
    return sections


@dataclass
class HostCompute(ComputeServer):
    """A chute-compute run inside its host's namespaces."""

    command: ClassVar[str] = "chute-compute"
    host: Host | None = None
    mountpoint: Path | None = None  # where this host sees its (first) store; None: no store

    def argv(self) -> list[str]:
        assert self.host is not None
        return self.host.command(super().argv())


def add_host(topo: Topology, api: ApiServer, root: Path, name: str, mounted: bool = True,
             filesystems: Mapping[str, Path] | None = None,
             **overrides: dict[str, Any] | None) -> HostCompute:
    """Host `name` (namespaces made now) with a chute-compute under `root/name`, not started.
    It mounts each of `filesystems` (filesystem id -> the machine's directory) at
    `root/name/<id>-on-<name>`, its own path, listed in its `[image_file_url]`; by default the
    API's store if `mounted`, else nothing (it fetches over HTTP). The machine's API directory
    is hidden on the host either way: a host reads a store only where its configuration says
    it is mounted."""
    if filesystems is None:
        filesystems = {SHARED_FS: api.root / "store"} if mounted else {}
    home = root / name
    home.mkdir(parents=True)
    where = {fs: home / f"{fs}-on-{name}" for fs in filesystems}
    host = topo.add_host(name, [Mount(filesystems[fs], where[fs]) for fs in filesystems],
                         hidden=[api.root])
    port = free_port()
    sections = compute_defaults(home, port, api)
    sections["DEFAULT"].update({"bind_host": host.address, "auth_strategy": "noauth"})
    sections["glance"]["api_servers"] = api.url
    del sections["image_file_url"], sections["image_file_url:shared"]
    if where:
        names = [f"fs{n}" for n in range(len(where))]
        sections["image_file_url"] = {"filesystems": names}
        for section, (fs, mountpoint) in zip(names, where.items(), strict=True):
            sections[f"image_file_url:{section}"] = {"id": fs, "mountpoint": str(mountpoint)}
    for section, options in overrides.items():
        if options is None:
            sections.pop(section, None)
        else:
            sections.setdefault(section, {}).update(options)
    conf_path = home / "chute-compute.conf"
    write_conf(conf_path, sections)
    return HostCompute(f"http://{host.address}:{port}", port, home, conf_path,
                       home / "chute-compute.log", Path(sections["DEFAULT"]["instances_path"]),
                       home / "chute-compute.stderr", host=host,
                       mountpoint=next(iter(where.values()), None))


def run_on(host: Host, *argv: str) -> subprocess.CompletedProcess[str]:
    """`argv` run on `host` (its namespaces), output captured."""
    return subprocess.run(host.command(argv), capture_output=True, text=True, check=False,
                          timeout=30)
