"""`chute up --keystone`: a real Keystone beside chute, and the seed's own commands (glance,
nova, openstack) run unchanged with the demo user's password through Keystone's catalog; the
first boot still copies through the shared filesystem."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from tests.helpers import keystone
from tests.helpers.services import free_port

BIN = Path(sys.executable).parent


@dataclass(frozen=True)
class Up:
    data: Path
    proc: subprocess.Popen[str]
    banner: str
    keystone_port: int

    def env(self, openrc: str = "demo-openrc") -> dict[str, str]:
        """This environment without any OS_*, plus what `. DATA_DIR/<openrc>` exports."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
        for line in (self.data / openrc).read_text().splitlines():
            found = re.match(r"export (OS_\w+)=(.*)$", line)
            if found:
                env[found.group(1)] = found.group(2)
        return env

    def run(self, *argv: str, openrc: str = "demo-openrc") -> str:
        done = subprocess.run([str(BIN / argv[0]), *argv[1:]], capture_output=True, text=True,
                              env=self.env(openrc), timeout=120)
        assert done.returncode == 0, (argv, done.stdout, done.stderr)
        return done.stdout


def _start(data: Path, *flags: str) -> Up:
    env = dict(os.environ)
    if keystone.cache() is not None:
        env["CHUTE_CACHE"] = str(keystone.cache())
    keystone.install()  # the first use's minute is not chute up's start timeout
    proc = subprocess.Popen([str(BIN / "chute"), "up", "--keystone", "--data-dir", str(data),
                             "--compute-driver", "fake", *flags], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, start_new_session=True)
    lines = []
    deadline = time.monotonic() + 120
    assert proc.stdout is not None and proc.stderr is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        if "Ctrl-C stops both" in line:
            port = int((data / "keystone" / "port").read_text())
            return Up(data, proc, "".join(lines), port)
    proc.kill()
    raise AssertionError("chute up --keystone did not start: " + "".join(lines)
                         + proc.stderr.read())


def _stop(up: Up) -> str:
    up.proc.send_signal(signal.SIGTERM)
    out, err = up.proc.communicate(timeout=60)
    assert up.proc.returncode == 0, err
    return out


@pytest.fixture(scope="module")
def up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Up]:
    data = tmp_path_factory.mktemp("up") / "var"
    started = _start(data, "--api-port", str(free_port()), "--compute-port", str(free_port()),
                     "--keystone-port", str(free_port()))
    try:
        yield started
    finally:
        if started.proc.poll() is None:
            _stop(started)


def test_the_seeds_commands_work_with_keystone(up: Up, tmp_path: Path) -> None:
    assert f"keystone listening on http://127.0.0.1:{up.keystone_port}/v3" in up.banner
    for name in ("openrc", "demo-openrc", "clouds.yaml", "keystone/admin-password"):
        assert (up.data / name).stat().st_mode & 0o077 == 0, name
    image_path = tmp_path / "cirros.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(image_path), "16M"],
                   check=True)
    created = up.run("glance", "image-create", "--progress", "--name", "cirros",
                     "--disk-format", "qcow2", "--container-format", "bare",
                     "--file", str(image_path))
    image_id = re.search(r"\|\s+id\s+\|\s+(\S+)", created)
    assert image_id is not None, created
    shown = up.run("glance", "image-show", image_id.group(1))
    assert re.search(r"\|\s+status\s+\|\s+active", shown), shown
    assert re.search(r"\|\s+visibility\s+\|\s+shared", shown), shown  # the demo's own image
    booted = up.run("nova", "boot", "--image", image_id.group(1), "--flavor", "2", "testcopy")
    assert "testcopy" in booted
    listed = ""
    deadline = time.monotonic() + 60
    while "ACTIVE" not in listed and "ERROR" not in listed and time.monotonic() < deadline:
        listed = up.run("nova", "list")
        time.sleep(0.3)
    assert re.search(r"testcopy\s+\|\s+ACTIVE", listed), listed
    log = (up.data / "log" / "chute-compute.log").read_text()
    assert "Successfully transferred using file" in log
    # The admin sees the demo's server with --all-tenants; the openstack CLI finds both
    # services through the catalog too.
    assert "testcopy" in up.run("nova", "list", "--all-tenants", openrc="openrc")
    assert "testcopy" in up.run("openstack", "server", "list", "-f", "value", "-c", "Name")
    # Without a token nothing answers; a token must come from this Keystone.
    api_url = re.search(r"chute-api listening on (\S+)", up.banner)
    assert api_url is not None
    assert requests.get(api_url.group(1) + "/v2/images", timeout=10).status_code == 401


def test_the_chute_cli_logs_in_with_the_openrc_and_the_clouds_yaml(up: Up,
                                                                  tmp_path: Path) -> None:
    """`chute` as the demo user, a password through the catalog like glance and nova: with
    demo-openrc, then with cloud chute-demo of clouds.yaml; a wrong password is one line."""
    data = tmp_path / "data.raw"
    data.write_bytes(b"\x01" * 65536)
    created = json.loads(up.run("chute", "image-create", "--name", "by-chute-cli",
                                "--disk-format", "raw", "--file", str(data), "-f", "json"))
    assert created["status"] == "active"
    env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
    env.update(OS_CLOUD="chute-demo", OS_CLIENT_CONFIG_FILE=str(up.data / "clouds.yaml"))
    shown = subprocess.run([str(BIN / "chute"), "image-show", "by-chute-cli", "-f", "json"],
                           capture_output=True, text=True, env=env, timeout=120)
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["owner"] == created["owner"]
    refused = subprocess.run([str(BIN / "chute"), "--os-password", "wrong", "list"],
                             capture_output=True, text=True, env=env, timeout=120)
    assert refused.returncode == 1
    assert refused.stderr.strip().splitlines() == [
        f"chute: error: Keystone at http://127.0.0.1:{up.keystone_port}/v3 refused the "
        f"credentials of demo (HTTP 401)"]


def test_a_second_start_keeps_keystone_and_refuses_the_other_mode(up: Up) -> None:
    out = _stop(up)
    assert "stopped chute-api and chute-compute" in out
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{up.keystone_port}/v3", timeout=2)
    tokens = subprocess.run([str(BIN / "chute"), "up", "--data-dir", str(up.data)],
                            capture_output=True, text=True, timeout=60)
    assert tokens.returncode == 1
    assert "was first started with --keystone" in tokens.stderr
    again = _start(up.data)
    try:
        assert "installing Keystone" not in again.banner
        assert "testcopy" in again.run("nova", "list")
    finally:
        _stop(again)
