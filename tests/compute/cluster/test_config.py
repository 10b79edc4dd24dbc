"""chute-compute-api and an agent's options: a bad config stops the process at start with one
line naming file, section and option."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent
GOOD_DB = "[database]\nconnection = sqlite:///{tmp}/compute.sqlite\n"


def run(command: str, conf: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / command), "--config-file", str(conf)], capture_output=True,
                          text=True, timeout=30, check=False)


def assert_one_line(proc: subprocess.CompletedProcess[str], prog: str, conf: Path,
                    where: str) -> None:
    assert proc.returncode == 1, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(f"{prog}: {conf}: "), lines[0]
    assert where in lines[0]


@pytest.mark.parametrize("text, where", [
    ("", "[database] connection: must be set"),
    ("[database]\nconnection = not a url\n", "[database] connection: is not a database URL"),
    ("[database]\nconnection = nosuchdb://x/y\n",
     "[database] connection: cannot open the compute database"),
    (GOOD_DB + "[scheduler]\nmax_attempts = 0\n", "[scheduler] max_attempts:"),
    (GOOD_DB + "[filter_scheduler]\nhost_subset_size = 0\n",
     "[filter_scheduler] host_subset_size: 0 is below the minimum 1"),
    (GOOD_DB + "[DEFAULT]\nservice_down_time = soon\n",
     "[DEFAULT] service_down_time: 'soon' is not an integer"),
    (GOOD_DB + "[glance]\napi_servers = ftp://images\n",
     "[glance] api_servers: 'ftp://images' is not an http(s) URL"),
    (GOOD_DB + "[DEFAULT]\nbind_host = 192.0.2.1\n", "[DEFAULT] auth_strategy: is not set"),
    (GOOD_DB + "[scheduler]\nhost_manager = x\n", "[scheduler] host_manager: unknown option"),
])
def test_compute_api_bad_config(tmp_path: Path, text: str, where: str) -> None:
    conf = tmp_path / "chute-compute-api.conf"
    conf.write_text(text.format(tmp=tmp_path))
    conf.chmod(0o600)
    assert_one_line(run("chute-compute-api", conf), "chute-compute-api", conf, where)


@pytest.mark.parametrize("text, where", [
    ("[compute_api]\nurl = ftp://api\n", "[compute_api] url: 'ftp://api' is not an http(s) URL"),
    ("[compute_api]\nurl = http://127.0.0.1:9\nagent_url = agent:8774\n",
     "[compute_api] agent_url: 'agent:8774' is not an http(s) URL"),
    ("[DEFAULT]\nbind_host = 0.0.0.0\nauth_strategy = noauth\n"
     "[compute_api]\nurl = http://127.0.0.1:9\n",
     "[compute_api] agent_url: must be set: bind_host '0.0.0.0'"),
    ("[DEFAULT]\nreport_interval = 0\n[compute_api]\nurl = http://127.0.0.1:9\n",
     "[DEFAULT] report_interval:"),
    ("[DEFAULT]\nhost = a/b\n[compute_api]\nurl = http://127.0.0.1:9\n",
     "[DEFAULT] host: must be a host name without '/'"),
])
def test_agent_bad_config(tmp_path: Path, text: str, where: str) -> None:
    conf = tmp_path / "chute-compute.conf"
    conf.write_text(f"[DEFAULT]\ninstances_path = {tmp_path}/instances\n" + text
                    if "[DEFAULT]" not in text else
                    text.replace("[DEFAULT]\n", f"[DEFAULT]\ninstances_path = {tmp_path}/i\n"))
    assert_one_line(run("chute-compute", conf), "chute-compute", conf, where)


def test_compute_api_show_config_prints_its_options(tmp_path: Path) -> None:
    conf = tmp_path / "chute-compute-api.conf"
    conf.write_text(GOOD_DB.format(tmp=tmp_path) + "[scheduler]\nmax_attempts = 5\n")
    conf.chmod(0o600)
    proc = subprocess.run([str(BIN / "chute-compute-api"), "--config-file", str(conf),
                           "--show-config"], capture_output=True, text=True, timeout=30,
                          check=False)
    assert proc.returncode == 0, proc.stderr
    assert "max_attempts = 5" in proc.stdout
    assert "service_down_time = 60" in proc.stdout
