"""The peer: real OpenStack Glance 33.0.0 + python-glanceclient, in their own virtualenv.

Glance 33 has no standalone server (`glance-api` only says so and exits), so it runs as the WSGI
app `glance.wsgi.api:application` under uWSGI, unauthenticated (`[paste_deploy] flavor =`
empty), on SQLite and the file store - the set-up bench/README.md describes under 'The peer'.
uWSGI's chunked-input settings matter: glanceclient sends 1 MiB chunks and uWSGI's default
`chunked-input-limit` (1 MiB) makes every CLI upload fail with 500. `add-header = Connection:
close` is what devstack sets: uWSGI's http-socket does not keep connections alive, and without
the header a client that reuses one (glanceclient after its schema GET) now and then fails
with "Connection reset by peer"; http11-socket would keep them alive but then each of the 2
worker processes serves one connection only, starving the other 30 of the API load test.

Anything that goes wrong while installing or starting raises `PeerUnavailable(reason)`; the
scenarios then report their peer cases as "peer unavailable: <reason>" instead of dropping
them.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from bench.procs import Service, ServiceError, free_port

GLANCE_VERSION = "33.0.0"
PACKAGES = [f"glance=={GLANCE_VERSION}", "python-glanceclient", "uwsgi"]
INSTALL_TIMEOUT = 900


class PeerUnavailable(RuntimeError):
    """Glance could not be installed or started; str() is the reason shown in the table."""


def _run(argv: list[str], timeout: float, what: str) -> None:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise PeerUnavailable(f"{what} took longer than {timeout:.0f} s") from None
    except OSError as exc:
        raise PeerUnavailable(f"{what} failed: {exc}") from None
    if done.returncode != 0:
        lines = [ln for ln in (done.stderr or done.stdout).splitlines()
                 if ln.strip() and not ln.startswith("WARNING: Location")]
        raise PeerUnavailable(f"{what} failed: {' | '.join(lines[-3:]) or done.returncode}")


class Peer:
    """Glance 33 installed under `work/glance-venv`, its state under `work/glance`."""

    def __init__(self, work: Path) -> None:
        self.venv = work.resolve() / "glance-venv"
        self.root = work.resolve() / "glance"
        self.service: Service | None = None

    @property
    def bin(self) -> Path:
        return self.venv / "bin"

    def installed(self) -> bool:
        probe = subprocess.run(
            [str(self.bin / "python"), "-c",
             "import importlib.metadata as m; print(m.version('glance'))"],
            capture_output=True, text=True) if (self.bin / "python").exists() else None
        return bool(probe and probe.returncode == 0 and probe.stdout.strip() == GLANCE_VERSION
                    and (self.bin / "uwsgi").exists() and (self.bin / "glance").exists())

    def install(self) -> None:
        if self.installed():
            return
        print(f"bench: installing Glance {GLANCE_VERSION} + python-glanceclient + uWSGI into "
              f"{self.venv} (about a minute)", file=sys.stderr, flush=True)
        if not (self.bin / "python").exists():
            _run([sys.executable, "-m", "venv", str(self.venv)], 120, "python -m venv")
        _run([str(self.bin / "pip"), "install", "-q", *PACKAGES], INSTALL_TIMEOUT,
             "pip install " + " ".join(PACKAGES))
        if not self.installed():
            raise PeerUnavailable(f"glance {GLANCE_VERSION} not importable after pip install")

    def _paste_ini(self) -> Path:
        shipped = self.venv / "etc" / "glance" / "glance-api-paste.ini"
        if not shipped.exists():
            found = list(self.venv.rglob("glance-api-paste.ini"))
            if not found:
                raise PeerUnavailable("glance-api-paste.ini not found in the glance package")
            shipped = found[0]
        return shipped

    def configure(self, port: int) -> Path:
        """Write glance-api.conf, the paste file and the uWSGI ini; return the ini's path."""
        if self.root.exists():
            shutil.rmtree(self.root)
        etc, images, locks = self.root / "etc", self.root / "store" / "images", self.root / "locks"
        for path in (etc, images, locks):
            path.mkdir(parents=True)
        shutil.copy(self._paste_ini(), etc / "glance-api-paste.ini")
        metadata = self.root / "metadata.json"
        metadata.write_text(json.dumps({"id": "peer-fs-1", "mountpoint": str(self.root / "store")}))
        (etc / "glance-api.conf").write_text(f"""\
[DEFAULT]
show_multiple_locations = True
show_image_direct_url = True
log_file = {self.root / 'glance-api.log'}

[database]
connection = sqlite:///{self.root / 'glance.sqlite'}

[glance_store]
stores = file,http
default_store = file
filesystem_store_datadir = {images}/
filesystem_store_metadata_file = {metadata}

[paste_deploy]
flavor =
config_file = {etc / 'glance-api-paste.ini'}

[oslo_policy]
enforce_new_defaults = False
enforce_scope = False

[oslo_concurrency]
lock_path = {locks}
""")
        ini = etc / "uwsgi.ini"
        ini.write_text(f"""\
[uwsgi]
http-socket = 127.0.0.1:{port}
module = glance.wsgi.api:application
home = {self.venv}
master = true
processes = 2
enable-threads = true
lazy-apps = true
die-on-term = true
http-auto-chunked = true
http-chunked-input = true
http-raw-body = true
chunked-input-limit = 16777216
buffer-size = 65535
disable-logging = true
add-header = Connection: close
env = OS_GLANCE_CONFIG_DIR={etc}
""")
        return ini

    def start(self) -> Service:
        """Install if needed, write fresh state, db_sync, start uWSGI; raise PeerUnavailable."""
        self.install()
        port = free_port()
        ini = self.configure(port)
        _run([str(self.bin / "glance-manage"), "--config-file",
              str(self.root / "etc" / "glance-api.conf"), "db_sync"], 300, "glance-manage db_sync")
        service = Service("glance (uWSGI)", [str(self.bin / "uwsgi"), "--ini", str(ini)],
                          self.root / "uwsgi.log", port)
        try:
            service.start("/versions", timeout=90)
        except ServiceError as exc:
            raise PeerUnavailable(str(exc)) from None
        self.service = service
        return service

    def cli(self, *args: str) -> list[str]:
        """argv of the glance CLI against the running peer (any token skips Keystone)."""
        assert self.service is not None
        return [str(self.bin / "glance"), "--os-image-url", self.service.url,
                "--os-auth-token", "bench", *args]

    def stop(self) -> None:
        if self.service is not None:
            self.service.stop()
            self.service = None
