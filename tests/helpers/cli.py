"""Running the real `chute` console script and reading what it printed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CHUTE = str(Path(sys.executable).parent / "chute")


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)

    def table(self) -> dict[str, str]:
        """The Property/Value table as {property: value}, wrapped values re-joined."""
        rows: dict[str, str] = {}
        key = None
        for line in self.stdout.splitlines():
            if not line.startswith("|"):
                continue
            cells = [c.strip() for c in line.strip().strip("|").split("|", 1)]
            if cells[0] == "Property":
                continue
            if cells[0]:
                key = cells[0]
                rows[key] = cells[1]
            elif key is not None:
                rows[key] += cells[1]
        return rows


def run_chute(*args: str, image_url: str | None = None, compute_url: str | None = None,
              env: dict[str, str] | None = None, timeout: float = 120) -> Result:
    """Run `chute ARGS` as a subprocess, so exit codes and stderr are the real ones."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
    if image_url:
        full_env["OS_IMAGE_URL"] = image_url
    if compute_url:
        full_env["OS_COMPUTE_URL"] = compute_url
    full_env.update(env or {})
    proc = subprocess.run([CHUTE, *args], check=False, capture_output=True, text=True,
                          env=full_env, timeout=timeout)
    return Result(proc.returncode, proc.stdout, proc.stderr)


def openrc_env(data_dir: Path) -> dict[str, str]:
    """The variables `. DATA_DIR/openrc` exports (what `chute up` writes for the clients)."""
    found = {}
    for line in (Path(data_dir) / "openrc").read_text().splitlines():
        if line.startswith("export "):
            name, _, value = line[len("export "):].partition("=")
            found[name] = value
    return found


def assert_one_line_error(result: Result, *fragments: str) -> None:
    """The CLI's promise on failure: exit 1, one line on stderr, no traceback."""
    assert result.returncode == 1, (result.returncode, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert lines[0].startswith("chute: error: "), lines[0]
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


@dataclass
class RawResult:
    returncode: int
    stdout: bytes
    stderr: str


def run_chute_raw(*args: str, image_url: str | None = None, compute_url: str | None = None,
                  umask: int | None = None, stdout: int | None = None,
                  timeout: float = 120) -> RawResult:
    """Run `chute ARGS` with stdout kept as bytes (image data), optionally under `umask`, or
    with stdout sent to the descriptor `stdout` (a terminal, say); stdout is then b""."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
    if image_url:
        env["OS_IMAGE_URL"] = image_url
    if compute_url:
        env["OS_COMPUTE_URL"] = compute_url
    preexec = (lambda: os.umask(umask)) if umask is not None else None  # noqa: E731
    proc = subprocess.run([CHUTE, *args], check=False, env=env, timeout=timeout,
                          stdout=subprocess.PIPE if stdout is None else stdout,
                          stderr=subprocess.PIPE, preexec_fn=preexec)
    return RawResult(proc.returncode, proc.stdout or b"", proc.stderr.decode())


def assert_one_line_failure(returncode: int, stderr: str, *fragments: str) -> None:
    """assert_one_line_error for a RawResult's fields."""
    assert_one_line_error(Result(returncode, "", stderr), *fragments)


def run_on(stack: tuple[Any, Any], *args: str) -> Any:
    """`chute ARGS` against a (image service, compute agent) pair, the `stack` fixture."""
    api, compute = stack
    return run_chute(*args, image_url=api.url, compute_url=compute.url)
