"""Several hypervisor hosts on one machine: a network and a mount namespace per host.

Why: issue 13's cluster (one chute-api, agents on other machines mounting the shared store
each at its own path, one mounting nothing) must run where there is one machine, for
`chute up --hosts N` and for the tests. Each host is

- a network namespace (`ip netns`) joined to the machine by a veth pair whose outer end is a
  port of one bridge; the bridge holds the subnet's first address (`.1`, where chute-api
  listens), host i has `.10+i`. No route leaves the subnet: the hosts reach only the bridge's
  address and each other.
- a mount namespace (`unshare --mount --propagation private`) held by a `sleep` process,
  where the store is bind-mounted at that host's own path and the machine's store directory is
  hidden under an empty tmpfs, so a host reads the images only where its configuration says
  they are mounted (or, mounting nothing, only over HTTP).

A process runs on a host through `nsenter --target HOLDER --mount --net`. The holder gets
SIGKILL when the process that made it dies (PR_SET_PDEATHSIG), which takes the mounts away;
the network namespaces and the bridge, which the kernel keeps, are recorded in
STATE_DIR/<tag>.json and removed by `close`, or by the next `Topology` made on the machine if
the process that made them was killed first. Root only (CAP_SYS_ADMIN and CAP_NET_ADMIN).
"""

from __future__ import annotations

import ctypes
import fcntl
import ipaddress
import itertools
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from chute.errors import ChuteError

STATE_DIR = Path("/run/chute-hosts")
SUBNETS = ipaddress.IPv4Network("10.213.0.0/16")  # private; one /24 per topology
FIRST_HOST = 10  # host i (from 0) is .10+i; .1 is the bridge
TOOLS = ("ip", "unshare", "nsenter", "mount", "sleep")
_PR_SET_PDEATHSIG = 1
_SERIAL = itertools.count(1)  # several topologies made by one process


class TopologyError(ChuteError):
    """The hosts cannot be made here; the message says why."""


def problem() -> str | None:
    """None if namespaced hosts can be made here, else why not (one line)."""
    if os.geteuid() != 0:
        return (f"hosts in network and mount namespaces need root (running as uid "
                f"{os.geteuid()})")
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        return f"hosts in namespaces need {', '.join(missing)} on PATH (Debian: iproute2, " \
               "util-linux, coreutils)"
    return None


def _run(*argv: str) -> None:
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise TopologyError(f"{shlex.join(argv)}: {(done.stderr or done.stdout).strip()}")


def _quiet(*argv: str) -> None:
    """Teardown: what is already gone is fine."""
    subprocess.run(argv, capture_output=True, check=False)


def _die_with_parent() -> None:
    """In the holder before exec: SIGKILL when its maker dies, whatever kills the maker."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


@dataclass(frozen=True)
class Mount:
    """`source` (a directory of the machine) appears at `target` on the host."""

    source: Path
    target: Path


@dataclass
class Host:
    """One namespaced host: its name, its address, its holder process."""

    name: str
    netns: str
    address: str
    mounts: tuple[Mount, ...]
    holder: subprocess.Popen[bytes] | None = None

    def command(self, argv: Sequence[str]) -> list[str]:
        """`argv` run inside this host's network and mount namespaces (nsenter execs it: the
        pid is the command's own)."""
        if self.holder is None or self.holder.poll() is not None:
            raise TopologyError(f"host {self.name}'s namespaces are gone")
        return ["nsenter", f"--target={self.holder.pid}", "--mount", "--net", *argv]


@dataclass
class Topology:
    """Hosts on one bridge in one private /24. Use as a context manager, or call `close`."""

    tag: str
    subnet: ipaddress.IPv4Network
    hosts: list[Host] = field(default_factory=list)

    @property
    def bridge(self) -> str:
        return f"cb{self.tag}"

    @property
    def gateway(self) -> str:
        """The machine's own address on the bridge: where the hosts reach chute-api."""
        return str(self.subnet.network_address + 1)

    @classmethod
    def create(cls, subnet: str | None = None) -> Topology:
        """A bridge in a free /24 of 10.213.0.0/16 (or `subnet`), no host yet. Removes first
        what an earlier topology left behind when its maker was killed."""
        why = problem()
        if why is not None:
            raise TopologyError(why)
        STATE_DIR.mkdir(mode=0o700, exist_ok=True)
        with open(STATE_DIR / ".lock", "w", encoding="utf-8") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # two makers never pick the same subnet
            _sweep()
            net = _asked(subnet) if subnet else _free_subnet()
            topo = cls(f"{os.getpid():x}{next(_SERIAL)}", net)
            topo._save()
            try:
                _run("ip", "link", "add", topo.bridge, "type", "bridge")
                _run("ip", "addr", "add", f"{topo.gateway}/{net.prefixlen}", "dev", topo.bridge)
                _run("ip", "link", "set", topo.bridge, "up")
            except TopologyError:
                topo.close()
                raise
        return topo

    def add_host(self, name: str, mounts: Sequence[Mount] = (),
                 hidden: Sequence[Path] = ()) -> Host:
        """Host `name`: its namespaces, its veth on the bridge, its address; `mounts` bound in
        its mount namespace, then each of `hidden` covered by an empty tmpfs."""
        index = len(self.hosts)
        host = Host(name, f"chute-{self.tag}-{index}",
                    str(self.subnet.network_address + FIRST_HOST + index), tuple(mounts))
        self.hosts.append(host)
        self._save()
        outer, inner = f"cv{self.tag}o{index}", f"cv{self.tag}i{index}"
        try:
            _run("ip", "netns", "add", host.netns)
            _run("ip", "link", "add", outer, "type", "veth", "peer", "name", inner)
            _run("ip", "link", "set", inner, "netns", host.netns)
            _run("ip", "link", "set", outer, "master", self.bridge, "up")
            inside = ("ip", "netns", "exec", host.netns)
            _run(*inside, "ip", "link", "set", "lo", "up")
            _run(*inside, "ip", "link", "set", inner, "name", "eth0")
            _run(*inside, "ip", "addr", "add", f"{host.address}/{self.subnet.prefixlen}",
                 "dev", "eth0")
            _run(*inside, "ip", "link", "set", "eth0", "up")
            host.holder = self._hold(host, hidden)
        except TopologyError:
            self.close()
            raise
        return host

    def _hold(self, host: Host, hidden: Sequence[Path]) -> subprocess.Popen[bytes]:
        """The process whose mount namespace is the host's: mounts done, then it sleeps."""
        steps = [f"mkdir -p {shlex.quote(str(m.target))} && "
                 f"mount --bind {shlex.quote(str(m.source))} {shlex.quote(str(m.target))}"
                 for m in host.mounts]
        steps += [f"mount -t tmpfs -o size=64k,mode=0700 chute-hidden {shlex.quote(str(p))}"
                  for p in hidden]
        script = " && ".join([*steps, "echo ready", "exec sleep infinity"])
        holder = subprocess.Popen(
            ["ip", "netns", "exec", host.netns, "unshare", "--mount", "--propagation",
             "private", "sh", "-c", script],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            preexec_fn=_die_with_parent, start_new_session=True)
        assert holder.stdout is not None and holder.stderr is not None
        if holder.stdout.readline().strip() != b"ready":
            holder.wait()
            raise TopologyError(f"host {host.name}'s mounts failed: "
                                f"{holder.stderr.read().decode(errors='replace').strip()}")
        return holder

    def close(self) -> None:
        """Everything this topology made is gone: holders (and so the mounts), namespaces
        (and with them the veth pairs), the bridge, the state file."""
        for host in self.hosts:
            if host.holder is not None and host.holder.poll() is None:
                host.holder.kill()
                host.holder.wait()
        _remove(self.bridge, [h.netns for h in self.hosts])
        (STATE_DIR / f"{self.tag}.json").unlink(missing_ok=True)

    def _save(self) -> None:
        state = {"pid": os.getpid(), "bridge": self.bridge, "subnet": str(self.subnet),
                 "netns": [h.netns for h in self.hosts]}
        path = STATE_DIR / f"{self.tag}.json"
        path.write_text(json.dumps(state) + "\n", encoding="utf-8")

    def __enter__(self) -> Topology:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def _remove(bridge: str, namespaces: Sequence[str]) -> None:
    for netns in namespaces:
        _quiet("ip", "netns", "delete", netns)
    _quiet("ip", "link", "delete", bridge)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _sweep() -> None:
    """Remove the topologies whose maker is dead (killed before its `close`)."""
    for path in STATE_DIR.glob("*.json"):
        try:
            state = json.loads(path.read_text(encoding="utf-8"))
            pid, bridge, namespaces = int(state["pid"]), str(state["bridge"]), state["netns"]
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if not _alive(pid):
            _remove(bridge, [str(n) for n in namespaces])
            path.unlink(missing_ok=True)


def _asked(subnet: str) -> ipaddress.IPv4Network:
    try:
        net = ipaddress.IPv4Network(subnet)
    except ValueError as exc:
        raise TopologyError(f"subnet {subnet}: {exc}") from None
    if net.prefixlen > 24:
        raise TopologyError(f"subnet {subnet}: a /24 or larger is needed")
    return net


def _free_subnet() -> ipaddress.IPv4Network:
    """The first /24 of SUBNETS no interface of the machine has an address in."""
    shown = subprocess.run(["ip", "-o", "-4", "addr", "show"], capture_output=True,
                           text=True, check=True).stdout
    used = {ipaddress.ip_address(a) for a in re.findall(r"inet (\d+\.\d+\.\d+\.\d+)", shown)}
    for net in SUBNETS.subnets(new_prefix=24):
        if net.network_address == SUBNETS.network_address:
            continue
        if not any(addr in net for addr in used):
            return net
    raise TopologyError(f"no free /24 left in {SUBNETS}")
