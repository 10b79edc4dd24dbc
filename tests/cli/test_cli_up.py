"""The README's story, through the real `chute` script: `chute up`, upload, boot, stop."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time

from tests.helpers.cli import CHUTE, run_chute


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


def test_chute_up_then_the_readme_story(tmp_path, qcow2_image):
    api_port, compute_port = _free_port(), _free_port()
    data_dir = tmp_path / "var"
    proc = subprocess.Popen([CHUTE, "up", "--data-dir", str(data_dir), "--api-port",
                             str(api_port), "--compute-port", str(compute_port)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        _wait_for(proc, "Ctrl-C stops both")
        urls = {"image_url": f"http://127.0.0.1:{api_port}",
                "compute_url": f"http://127.0.0.1:{compute_port}"}
        made = run_chute("image-create", "--file", str(qcow2_image), "--name", "demo",
                         "--disk-format", "qcow2", "--container-format", "bare", "--progress",
                         **urls)
        assert made.returncode == 0, made.stderr
        rows = made.table()
        assert rows["locations"].startswith(f'[{{"url": "file://{data_dir}/store/images/')
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
