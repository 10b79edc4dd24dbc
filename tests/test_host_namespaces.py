"""Namespaced hosts leave nothing behind: not after `close`, not after their maker is
killed, and without root they are refused in one line naming the reason."""

from __future__ import annotations

import os
import subprocess
import sys

from chute import host_namespaces
from chute.host_namespaces import Mount
from tests.helpers.netns import topology
from tests.helpers.polling import wait_for


def _namespaces() -> str:
    return subprocess.run(["ip", "netns", "list"], capture_output=True, text=True,
                          check=True).stdout


def _links() -> str:
    return subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True,
                          check=True).stdout


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_close_removes_namespaces_links_mounts_and_holders(tmp_path):
    (tmp_path / "store").mkdir()
    (tmp_path / "store" / "marker").write_text("x")
    with topology() as topo:
        host = topo.add_host("h0", [Mount(tmp_path / "store", tmp_path / "seen")])
        assert host.holder is not None
        holder = host.holder.pid
        assert host.netns in _namespaces() and topo.bridge in _links()
        seen = subprocess.run(host.command(["cat", str(tmp_path / "seen" / "marker")]),
                              capture_output=True, text=True, check=False)
        assert seen.stdout == "x", seen.stderr
    assert host.netns not in _namespaces()
    assert f"cv{topo.tag}" not in _links() and topo.bridge not in _links()
    assert not _alive(holder)
    assert not (host_namespaces.STATE_DIR / f"{topo.tag}.json").exists()
    assert str(tmp_path / "seen") not in open("/proc/self/mountinfo").read()


MAKER = ("import sys, time; from chute.host_namespaces import Topology; t = Topology.create(); "
         "t.add_host('h0'); print(t.tag, t.hosts[0].netns, t.hosts[0].holder.pid, flush=True);"
         " time.sleep(600)")


def test_what_a_killed_maker_left_is_removed_by_the_next_topology():
    maker = subprocess.Popen([sys.executable, "-c", MAKER], stdout=subprocess.PIPE, text=True)
    assert maker.stdout is not None
    tag, netns, holder = maker.stdout.readline().split()
    maker.kill()
    maker.wait()
    wait_for(lambda: not _alive(int(holder)), 10, "the holder to die with its maker")
    assert netns in _namespaces()  # the kernel keeps a named namespace
    with topology():
        assert netns not in _namespaces()
        assert f"cb{tag}" not in _links()
        assert not (host_namespaces.STATE_DIR / f"{tag}.json").exists()


def test_without_root_it_says_so_in_one_line():
    code = ("from chute.host_namespaces import Topology, TopologyError\n"
            "try:\n    Topology.create()\nexcept TopologyError as exc:\n    print(exc)\n")
    done = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                           sys.executable, "-c", code], capture_output=True, text=True,
                          check=False, cwd="/")
    assert done.stdout == ("hosts in network and mount namespaces need root (running as uid "
                           "65534)\n"), done.stderr
