"""chute-api and chute-compute run as real processes on free loopback ports.

Plain classes and functions; the fixtures that start and stop them are in tests/conftest.py.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Self

import requests

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def write_conf(path: Path, sections: dict[str, dict[str, Any]]) -> None:
    """An ini file chute's config loader reads: booleans lower-case, lists comma-separated.
    Written 0600, as an operator keeps a config that may hold a service_token (a service
    refuses to start with such a file readable by others)."""
    lines = []
    for section, options in sections.items():
        lines.append(f"[{section}]")
        for key, value in options.items():
            if isinstance(value, bool):
                value = str(value).lower()
            elif isinstance(value, (list, tuple)):
                value = ", ".join(str(v) for v in value)
            lines.append(f"{key} = {value}")
        lines.append("")
    path.write_text("\n".join(lines))
    path.chmod(0o600)


class ServiceProcess:
    """Start/stop/kill for a chute service run as its own process group (gunicorn master +
    workers), so a crash test can SIGKILL all of it at once. Subclasses give the command, the
    path that answers 200 once it serves, and where its console output goes."""

    command: ClassVar[str]
    probe_path: ClassVar[str]
    url: str
    conf_path: Path
    proc: subprocess.Popen | None

    def console_path(self) -> Path:
        raise NotImplementedError

    def argv(self) -> list[str]:
        """The command that runs the service (a subclass may run it elsewhere: a namespace)."""
        return [str(BIN / self.command), "--config-file", str(self.conf_path)]

    def start(self, timeout: float = 30.0) -> Self:
        with open(self.console_path(), "ab") as console:
            self.proc = subprocess.Popen(
                self.argv(),
                stdin=subprocess.DEVNULL, stdout=console, stderr=subprocess.STDOUT,
                start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.command} exited with {self.proc.returncode}:\n"
                                   f"{self.console_path().read_text(errors='replace')[-3000:]}")
            try:
                if requests.get(self.url + self.probe_path, timeout=1).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.05)
        self.kill()
        raise RuntimeError(f"{self.command} did not answer within {timeout}s:\n"
                           f"{self.console_path().read_text(errors='replace')[-3000:]}")

    def _signal_group(self, sig: int) -> None:
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                pass

    def stop(self) -> None:
        """gunicorn's quick shutdown (SIGINT: half the wait of SIGTERM's graceful one, which
        tests do not need), SIGKILL if it lingers."""
        if self.proc is None:
            return
        self._signal_group(signal.SIGINT)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        """SIGKILL every process of the service at once: a crash, nothing gets to clean up."""
        if self.proc is None:
            return
        self._signal_group(signal.SIGKILL)
        self.proc.wait(timeout=5)

    def restart(self) -> Self:
        self.stop()
        return self.start()

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")  # type: ignore[attr-defined]
        except FileNotFoundError:
            return ""


@dataclass
class ApiServer(ServiceProcess):
    """A running chute-api; its console output is its log."""

    command: ClassVar[str] = "chute-api"
    probe_path: ClassVar[str] = "/versions"

    url: str
    port: int
    datadir: Path
    root: Path
    conf_path: Path
    log_path: Path
    proc: subprocess.Popen | None = None

    def console_path(self) -> Path:
        return self.log_path


def api_defaults(root: Path, port: int) -> dict[str, dict[str, Any]]:
    return {
        "DEFAULT": {"bind_host": "127.0.0.1", "bind_port": port, "workers": 2,
                    "show_multiple_locations": True, "show_image_direct_url": True},
        "glance_store": {"filesystem_store_datadir": str(root / "store" / "images"),
                         "filesystem_store_metadata_file": str(root / "metadata.json")},
    }


@dataclass
class ComputeServer(ServiceProcess):
    """A running chute-compute (gunicorn master + one worker); it logs to `log_path`
    (log_file), its console (start-up errors) goes to `stderr_path`."""

    command: ClassVar[str] = "chute-compute"
    probe_path: ClassVar[str] = "/v2.1"

    url: str
    port: int
    root: Path
    conf_path: Path
    log_path: Path
    instances_path: Path
    stderr_path: Path
    proc: subprocess.Popen | None = None

    def console_path(self) -> Path:
        return self.stderr_path


def compute_defaults(root: Path, port: int, api: ApiServer | None) -> dict[str, dict[str, Any]]:
    """Pointed at `api`, with its store as the shared filesystem: a boot copies directly."""
    return {
        "DEFAULT": {"bind_host": "127.0.0.1", "bind_port": port,
                    "instances_path": str(root / "instances"),
                    "log_file": str(root / "chute-compute.log")},
        "glance": {"api_servers": api.url if api else "http://127.0.0.1:9",
                   "allowed_direct_url_schemes": "file", "num_retries": 1},
        "image_file_url": {"filesystems": "shared"},
        "image_file_url:shared": {"id": "shared-fs-1",
                                  "mountpoint": str(api.root / "store") if api else str(root)},
        "image_cache": {"manager_interval": 0},
    }


def api_on_database(url: str, overrides: dict[str, dict[str, Any]]
                    ) -> dict[str, dict[str, Any]]:
    """chute-api's overrides with `[database] connection = url` (from the `database_url`
    fixture: "" keeps the SQLite default), unless they name a connection of their own."""
    if not url or "connection" in overrides.get("database", {}):
        return overrides
    return {**overrides, "database": {**overrides.get("database", {}), "connection": url}}


def compute_on_database(url: str, overrides: dict[str, Any]) -> dict[str, Any]:
    """chute-compute's overrides with `[DEFAULT] state_connection = url`, the same way."""
    defaults = overrides.get("DEFAULT") or {}
    if not url or "state_connection" in defaults:
        return overrides
    return {**overrides, "DEFAULT": {**defaults, "state_connection": url}}


def prepare_api(root: Path, **overrides: dict[str, Any]) -> ApiServer:
    """A chute-api under `root` (store, metadata file, config written), not started yet.
    Overrides are sections merged over api_defaults."""
    port = free_port()
    (root / "store").mkdir()
    (root / "metadata.json").write_text(
        json.dumps({"id": "shared-fs-1", "mountpoint": str(root / "store")}))
    sections = api_defaults(root, port)
    for section, options in overrides.items():
        sections.setdefault(section, {}).update(options)
    conf_path = root / "chute-api.conf"
    write_conf(conf_path, sections)
    datadir = Path(sections["glance_store"].get("filesystem_store_datadir") or root)
    return ApiServer(f"http://127.0.0.1:{port}", port, datadir, root, conf_path,
                     root / "chute-api.log")


def prepare_compute(root: Path, api: ApiServer | None = None,
                    **overrides: dict[str, Any] | None) -> ComputeServer:
    """A chute-compute under `root` pointed at `api`, not started yet. Overrides are sections
    merged over compute_defaults; a section given as None is dropped."""
    port = free_port()
    sections = compute_defaults(root, port, api)
    for section, options in overrides.items():
        if options is None:
            sections.pop(section, None)
        else:
            sections.setdefault(section, {}).update(options)
    conf_path = root / "chute-compute.conf"
    write_conf(conf_path, sections)
    return ComputeServer(f"http://127.0.0.1:{port}", port, root, conf_path,
                         root / "chute-compute.log",
                         Path(sections["DEFAULT"]["instances_path"]),
                         root / "chute-compute.stderr")
