"""`chute up --hosts N`: a cluster on one machine in one command, gone on Ctrl-C."""

from __future__ import annotations

import io
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import requests

from chute.client.images import ImageClient
from tests.helpers.polling import wait_for
from tests.helpers.procs import children
from tests.helpers.servers import boot, wait_built

CHUTE = str(Path(sys.executable).parent / "chute")


def test_without_root_hosts_is_refused_in_one_line(tmp_path):
    tmp_path.chmod(0o777)
    done = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                           CHUTE, "up", "--hosts", "3", "--data-dir", str(tmp_path / "var")],
                          capture_output=True, text=True, check=False, cwd="/")
    assert done.returncode == 1
    assert done.stderr == ("chute up: --hosts: hosts in network and mount namespaces need root "
                           "(running as uid 65534); run it as root, or run `chute up` without "
                           "--hosts\n")
    assert not (tmp_path / "var").exists()  # nothing was made


@dataclass(frozen=True)
class Endpoint:
    """What tests.helpers.servers needs of a compute service: its URL and a token."""

    url: str
    token: str


def _openrc(data: Path) -> dict[str, str]:
    found = re.findall(r"^export (\w+)=(.*)$", (data / "openrc").read_text(), re.MULTILINE)
    return dict(found)


def _chute_up_hosts(data: Path, hosts: int = 3) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen([CHUTE, "up", "--hosts", str(hosts), "--data-dir", str(data)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    assert proc.stdout is not None
    lines = []
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        if "Ctrl-C stops them all" in line:
            return proc, "".join(lines)
    proc.kill()
    raise AssertionError("chute up --hosts did not start: " + "".join(lines))


def _ours(tag_links: str, namespaces: str, data: Path) -> list[str]:
    """What of this run is still on the machine: its namespaces, bridge, mounts."""
    left = [line for line in namespaces.splitlines() if line.startswith("chute-")]
    left += [line for line in tag_links.splitlines() if ": cb" in line or ": cv" in line]
    left += [line for line in open("/proc/self/mountinfo") if str(data) in line]
    return left


def test_three_hosts_in_one_command_boot_a_storm_and_go_away_on_ctrl_c(tmp_path):
    data = tmp_path / "var"
    before = _ours(_ip("-o", "link", "show"), _ip("netns", "list"), data)
    proc, banner = _chute_up_hosts(data)
    try:
        env = _openrc(data)
        assert "host3: chute-compute agent on" in banner
        assert "no store mounted: fetches over HTTP" in banner
        assert f"the store at {data / 'hosts' / 'host1' / 'store'}" in banner
        token = env["OS_AUTH_TOKEN"]
        images = ImageClient(env["OS_IMAGE_URL"], token)
        image = images.create(name="cirros", disk_format="raw", container_format="bare")
        payload = os.urandom(2 * 1024 * 1024)
        images.upload(image["id"], io.BytesIO(payload), len(payload))
        compute = Endpoint(env["OS_COMPUTE_URL"], token)
        ids = [boot(compute, image["id"], f"vm{n}")["id"] for n in range(12)]
        built = [wait_built(compute, server_id, timeout=120) for server_id in ids]
        assert [s["status"] for s in built] == ["ACTIVE"] * 12, [s.get("fault") for s in built]
        logs = {h: (data / "log" / f"{h}.log").read_text() for h in ("host1", "host2", "host3")}
        assert [logs[h].count("Successfully transferred using") for h in logs] == [1, 1, 1]
        assert "Successfully transferred using http" in logs["host3"]
        assert "Successfully transferred using file" in logs["host1"]
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out
    assert "namespaces removed" in out
    assert _ours(_ip("-o", "link", "show"), _ip("netns", "list"), data) == before


def _ip(*argv: str) -> str:
    return subprocess.run(["ip", *argv], capture_output=True, text=True, check=True).stdout


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_after_a_kill_9_nothing_runs_on_and_the_next_start_serves_the_same_urls(tmp_path):
    data = tmp_path / "var"
    proc, _ = _chute_up_hosts(data, hosts=1)
    services = children(proc.pid)
    proc.kill()
    proc.wait()
    urls = _openrc(data)
    assert len(services) == 4, services  # chute-api, chute-compute-api, agent, host holder
    wait_for(lambda: not any(_alive(pid) for pid in services), 30,
             "the services to stop with their chute up")
    again, banner = _chute_up_hosts(data, hosts=1)
    try:
        assert _openrc(data) == urls
        assert f"chute-api listening on {urls['OS_IMAGE_URL']}" in banner
        assert requests.get(urls["OS_COMPUTE_URL"] + "/v2.1", timeout=10).status_code == 200
    finally:
        os.killpg(again.pid, signal.SIGINT)
        again.communicate(timeout=60)
    assert again.returncode == 0


def test_a_data_dir_keeps_the_shape_of_its_first_start(tmp_path):
    data = tmp_path / "var"
    for host in ("host1", "host2"):
        (data / "hosts" / host).mkdir(parents=True)
    (data / "chute-compute-api.conf").write_text("")
    more = subprocess.run([CHUTE, "up", "--hosts", "3", "--data-dir", str(data)],
                          capture_output=True, text=True, check=False)
    assert (more.returncode, more.stderr) == (1, (
        f"chute up: {data} was first started with --hosts 2; start it so again, or use "
        "another --data-dir\n"))
    plain = subprocess.run([CHUTE, "up", "--data-dir", str(data)], capture_output=True,
                           text=True, check=False)
    assert (plain.returncode, plain.stderr) == (1, (
        f"chute up: {data} was first started with --hosts (it has "
        f"{data / 'chute-compute-api.conf'}); start it with --hosts again, or use another "
        "--data-dir\n"))
