"""Shared fixtures: real chute-api servers on free loopback ports (subprocesses).

`start_api(**overrides)` writes a chute-api.conf under a temporary root, starts
`chute-api --config-file F` from this virtualenv, waits for `GET /versions` and stops the server
at teardown. Overrides are `{"DEFAULT": {...}, "glance_store": {...}, ...}` merged over the test
defaults (locations shown, metadata file `{"id": "shared-fs-1", "mountpoint": <root>/store}`,
datadir `<root>/store/images`, 2 workers).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, ClassVar, Iterator, Self

import pytest
import requests

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def write_conf(path: Path, sections: dict[str, dict[str, Any]]) -> None:
    lines = []
    for section, options in sections.items():
        lines.append(f"[{section}]")
        for key, value in options.items():
            if isinstance(value, bool):
                value = str(value).lower()
            lines.append(f"{key} = {value}")
        lines.append("")
    path.write_text("\n".join(lines))


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

    def start(self, timeout: float = 30.0) -> Self:
        with open(self.console_path(), "ab") as console:
            self.proc = subprocess.Popen(
                [str(BIN / self.command), "--config-file", str(self.conf_path)],
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


@pytest.fixture
def start_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., ApiServer]]:
    servers: list[ApiServer] = []

    def start(**overrides: dict[str, Any]) -> ApiServer:
        root = tmp_path_factory.mktemp("api")
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
        server = ApiServer(f"http://127.0.0.1:{port}", port, datadir, root, conf_path,
                           root / "chute-api.log")
        servers.append(server)
        return server.start()

    yield start
    # SIGKILL rather than stop(): gunicorn's shutdown takes 3-6 s on a busy 2-core machine and
    # a test's temporary server has nothing worth shutting down gracefully.
    for server in servers:
        server.kill()


@pytest.fixture
def api_server(start_api: Callable[..., ApiServer]) -> ApiServer:
    return start_api()


@pytest.fixture(scope="session")
def shared_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    """One default server for the whole session (tests must not depend on an empty store)."""
    root = tmp_path_factory.mktemp("shared-api")
    port = free_port()
    (root / "store").mkdir()
    (root / "metadata.json").write_text(
        json.dumps({"id": "shared-fs-1", "mountpoint": str(root / "store")}))
    conf_path = root / "chute-api.conf"
    write_conf(conf_path, api_defaults(root, port))
    server = ApiServer(f"http://127.0.0.1:{port}", port, root / "store" / "images", root,
                       conf_path, root / "chute-api.log")
    server.start()
    yield server
    server.kill()


# -- chute-compute (helper C2) ---------------------------------------------------------------

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


@pytest.fixture
def start_compute(tmp_path_factory: pytest.TempPathFactory
                  ) -> Iterator[Callable[..., ComputeServer]]:
    """`start_compute(api=None, **overrides)`: overrides are sections merged over
    compute_defaults (`libvirt={"images_type": "raw"}`, `**{"image_file_url:shared": {...}}`);
    a section given as None is dropped."""
    servers: list[ComputeServer] = []

    def start(api: ApiServer | None = None,
              **overrides: dict[str, Any] | None) -> ComputeServer:
        root = tmp_path_factory.mktemp("compute")
        port = free_port()
        sections = compute_defaults(root, port, api)
        for section, options in overrides.items():
            if options is None:
                sections.pop(section, None)
            else:
                sections.setdefault(section, {}).update(options)
        conf_path = root / "chute-compute.conf"
        write_conf(conf_path, sections)
        server = ComputeServer(f"http://127.0.0.1:{port}", port, root, conf_path,
                               root / "chute-compute.log",
                               Path(sections["DEFAULT"]["instances_path"]),
                               root / "chute-compute.stderr")
        servers.append(server)
        return server.start()

    yield start
    # SIGKILL rather than stop(): gunicorn's shutdown takes 3-6 s on a busy 2-core machine and
    # a test's temporary server has nothing worth shutting down gracefully.
    for server in servers:
        server.kill()


# --- small image files (used by the CLI tests) -------------------------------------------------
# Kept here rather than in tests/cli/conftest.py: test modules import helpers with
# `from conftest import ...`, and a second conftest.py shadows this one under that name.

@pytest.fixture
def raw_image(tmp_path: Path) -> Path:
    """3 MiB of random bytes: a raw disk image whose every byte matters."""
    path = tmp_path / "disk.raw"
    path.write_bytes(os.urandom(3 * 1024 * 1024 + 123))
    return path


@pytest.fixture
def qcow2_image(tmp_path: Path) -> Path:
    """A real qcow2 made by qemu-img, with 1 MiB of data written into it by qemu-io."""
    path = tmp_path / "disk.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(path), "16M"], check=True)
    subprocess.run(["qemu-io", "-f", "qcow2", "-c", "write -P 0x5a 0 1M", str(path)],
                   check=True, capture_output=True)
    return path


@pytest.fixture(scope="session")
def xfs_reflink(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """An XFS filesystem with reflink=1 on a loop file, mounted for the session (root only;
    skipped with the reason where loop mounts are not permitted; mkfs.xfs comes with
    `make sysdeps`, so its absence is an error, not a skip)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a loop XFS needs root")
    root = tmp_path_factory.mktemp("xfs")
    image, mnt = root / "xfs.img", root / "mnt"
    mnt.mkdir()
    with open(image, "wb") as handle:
        handle.truncate(300 << 20)
    if shutil.which("mkfs.xfs") is None:
        pytest.fail("mkfs.xfs is missing: `make sysdeps` installs xfsprogs")
    made = subprocess.run(["mkfs.xfs", "-q", "-m", "reflink=1", "-f", str(image)],
                          capture_output=True, text=True)
    if made.returncode != 0:
        pytest.skip(f"mkfs.xfs unavailable or failed: {made.stderr.strip()}")
    mounted = subprocess.run(["mount", "-o", "loop", str(image), str(mnt)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"loop mount not permitted here: {mounted.stderr.strip()}")
    yield mnt
    subprocess.run(["umount", str(mnt)], check=True)


# -- a peer that misbehaves ------------------------------------------------------------------

@pytest.fixture
def hangup_server() -> Iterator[str]:
    """URL of a loopback HTTP peer that reads a request's head and 1 MiB of its body, then
    closes the connection without answering: a server that dies mid-upload."""
    listener = socket.create_server(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{listener.getsockname()[1]}"

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return  # the listener was closed at teardown
            with conn:
                seen = b""
                while b"\r\n\r\n" not in seen:
                    got = conn.recv(65536)
                    if not got:
                        break
                    seen += got
                body = len(seen.partition(b"\r\n\r\n")[2])
                while body < 1 << 20:
                    got = conn.recv(1 << 20)
                    if not got:
                        break
                    body += len(got)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield url
    listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept(); close() alone does not
    listener.close()
    thread.join(5)
