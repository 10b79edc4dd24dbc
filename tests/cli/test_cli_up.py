"""The README's story, through the real `chute` script: `chute up`, upload, boot, stop."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

from tests.helpers.cli import CHUTE, openrc_env, run_chute


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for(proc: subprocess.Popen, text: str, timeout: float = 60) -> list[str]:
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        if text in line:
            return lines
    raise AssertionError(f"chute up never printed {text!r}: {''.join(lines)}")


def _up(data_dir, api_port: int, compute_port: int, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([CHUTE, "up", "--data-dir", str(data_dir), "--api-port",
                             str(api_port), "--compute-port", str(compute_port), *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


def test_chute_up_then_the_readme_story(tmp_path, qcow2_image):
    api_port, compute_port = _free_port(), _free_port()
    data_dir = tmp_path / "var"
    proc = _up(data_dir, api_port, compute_port)
    try:
        _wait_for(proc, "Ctrl-C stops both")
        urls = {"env": openrc_env(data_dir)}  # auth_strategy = tokens: the admin's token
        assert urls["env"]["OS_IMAGE_URL"] == f"http://127.0.0.1:{api_port}"
        assert urls["env"]["OS_COMPUTE_URL"] == f"http://127.0.0.1:{compute_port}"
        refused = run_chute("image-list", image_url=urls["env"]["OS_IMAGE_URL"])
        assert refused.returncode == 1 and "401" in refused.stderr, refused.stderr
        made = run_chute("image-create", "--file", str(qcow2_image), "--name", "demo",
                         "--disk-format", "qcow2", "--container-format", "bare", "--progress",
                         **urls)
        assert made.returncode == 0, made.stderr
        rows = made.table()
        # Issue 18 item 8: a user sees no store path; the compute host still finds it.
        assert "locations" not in rows and "direct_url" not in rows, rows
        shown = run_chute("image-show", rows["id"], **urls)
        assert shown.returncode == 0, shown.stderr
        assert shown.table()["status"] == "active"
        assert "locations" not in shown.table() and str(data_dir) not in shown.stdout
        explained = subprocess.run(
            [str(Path(CHUTE).parent / "chute-compute"), "--config-file",
             str(data_dir / "chute-compute.conf"), "explain", rows["id"]],
            capture_output=True, text=True, timeout=60, check=False)
        assert explained.returncode == 0, explained.stderr
        path = f"{data_dir}/store/images/{rows['id']}"
        assert f"[1] file://{path}" in explained.stdout
        assert f"A fetch would copy {path} directly." in explained.stdout
        booted = run_chute("boot", "--image", rows["id"], "--flavor", "2", "--poll", "vm1",
                           **urls)
        assert booted.returncode == 0, booted.stderr
        assert booted.table()["status"] == "ACTIVE"
        log = (data_dir / "log" / "chute-compute.log").read_text()
        assert "Successfully transferred using file" in log
    finally:
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "stopped chute-api and chute-compute" in out


def test_chute_up_show_locations_shows_the_file_location(tmp_path, qcow2_image):
    """The operator's opt-in: `chute up --show-locations`, then image-show has the location."""
    api_port, compute_port = _free_port(), _free_port()
    data_dir = tmp_path / "var"
    proc = _up(data_dir, api_port, compute_port, "--show-locations")
    try:
        _wait_for(proc, "Ctrl-C stops both")
        env = openrc_env(data_dir)
        made = run_chute("image-create", "--file", str(qcow2_image), "--name", "demo",
                         "--disk-format", "qcow2", env=env)
        assert made.returncode == 0, made.stderr
        image_id = made.table()["id"]
        rows = run_chute("image-show", image_id, env=env).table()
        location = f"file://{data_dir}/store/images/{image_id}"
        assert rows["locations"].startswith(f'[{{"url": "{location}"')
        assert rows["direct_url"] == location
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err


def test_a_second_chute_up_on_the_same_data_dir_refuses_in_one_line(tmp_path):
    """Issue 18 item 10: one `chute up` per data dir; the second one starts nothing."""
    data_dir = tmp_path / "var"
    proc = _up(data_dir, _free_port(), _free_port())
    try:
        _wait_for(proc, "Ctrl-C stops both")
        second = subprocess.run([CHUTE, "up", "--data-dir", str(data_dir)],
                                capture_output=True, text=True, timeout=30, check=False)
        assert second.returncode == 1
        assert "listening" not in second.stdout
        lines = second.stderr.splitlines()
        assert len(lines) == 1, second.stderr
        assert f"{data_dir} is already used by another chute up (pid {proc.pid})" in lines[0]
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err


def test_chute_up_on_a_busy_port_says_so_in_one_line(tmp_path):
    """Issue 18 item 10: the bind of both ports is checked before anything is claimed."""
    for which in ("api", "compute"):
        with socket.socket() as busy:
            busy.bind(("127.0.0.1", 0))
            busy.listen()
            port = busy.getsockname()[1]
            ports = {"api": _free_port(), "compute": _free_port(), which: port}
            data_dir = tmp_path / which
            done = subprocess.run([CHUTE, "up", "--data-dir", str(data_dir), "--api-port",
                                   str(ports["api"]), "--compute-port", str(ports["compute"])],
                                  capture_output=True, text=True, timeout=60, check=False)
        assert done.returncode == 1
        assert "listening" not in done.stdout, done.stdout
        lines = done.stderr.splitlines()
        assert len(lines) == 1, done.stderr
        assert f"port {port} on 127.0.0.1 (chute-{which}" in lines[0]
        assert "already in use" in lines[0]
