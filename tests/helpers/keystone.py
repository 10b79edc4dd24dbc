"""A real Keystone 30 for the tests: installed from PyPI into its own venv (kept between runs
in ~/.cache/chute, or $CHUTE_TEST_CACHE), SQLite, fernet tokens, served by uWSGI on a free
loopback port; bootstrapped with an admin, then given projects, users, roles and catalog
entries through its own REST API."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from tests.helpers.identity import Caller
from tests.helpers.services import free_port

VERSION = "30.0.0"
PACKAGES = [f"keystone=={VERSION}", "uwsgi"]


def venv() -> Path:
    cache = Path(os.environ.get("CHUTE_TEST_CACHE") or Path.home() / ".cache" / "chute")
    return cache / f"keystone-{VERSION}"


def install() -> Path:
    """The venv with Keystone and uWSGI, installed on first use (about a minute)."""
    home = venv()
    python = home / "bin" / "python"
    probe = [str(python), "-c", "import importlib.metadata as m; print(m.version('keystone'))"]
    if python.exists() and (home / "bin" / "uwsgi").exists() and subprocess.run(
            probe, capture_output=True, text=True).stdout.strip() == VERSION:
        return home
    home.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "venv", str(home)], check=True)
    subprocess.run([str(home / "bin" / "pip"), "install", "-q", *PACKAGES], check=True,
                   timeout=900, capture_output=True)
    return home


@dataclass
class Keystone:
    url: str  # .../v3
    admin_token: str
    proc: subprocess.Popen[bytes]
    log: Path
    ids: dict[str, str] = field(default_factory=dict)  # role:NAME, project:NAME -> id

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        resp = requests.request(method, self.url + path, json=body, timeout=30,
                                headers={"X-Auth-Token": self.admin_token})
        assert resp.status_code < 300, (method, path, resp.status_code, resp.text)
        return resp.json() if resp.content else None

    def project(self, name: str) -> str:
        key = f"project:{name}"
        if key not in self.ids:
            self.ids[key] = self.call("POST", "/projects", {"project": {
                "name": name, "domain_id": "default"}})["project"]["id"]
        return self.ids[key]

    def role(self, name: str) -> str:
        key = f"role:{name}"
        if key not in self.ids:
            found = self.call("GET", f"/roles?name={name}")["roles"]
            self.ids[key] = found[0]["id"] if found else self.call(
                "POST", "/roles", {"role": {"name": name}})["role"]["id"]
        return self.ids[key]

    def user(self, name: str, project: str, role: str) -> tuple[str, str]:
        """A user with `role` on `project` (created); -> (its password, the project id)."""
        password = secrets.token_hex(12)
        user_id = self.call("POST", "/users", {"user": {
            "name": name, "password": password, "domain_id": "default"}})["user"]["id"]
        project_id = self.project(project)
        self.call("PUT", f"/projects/{project_id}/users/{user_id}/roles/{self.role(role)}")
        return password, project_id

    def token(self, user: str, password: str, project_id: str) -> str:
        body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
            "name": user, "domain": {"id": "default"}, "password": password}}},
            "scope": {"project": {"id": project_id}}}}
        resp = requests.post(self.url + "/auth/tokens", json=body, timeout=30)
        assert resp.status_code == 201, resp.text
        return resp.headers["X-Subject-Token"]

    def caller(self, name: str, project: str, role: str) -> Caller:
        password, project_id = self.user(f"user-{name}", project, role)
        return Caller(name, self.token(f"user-{name}", password, project_id), project_id, role)

    def register(self, service_type: str, name: str, url: str) -> None:
        """A catalog entry: service and its public endpoint in RegionOne."""
        service = self.call("POST", "/services", {"service": {"type": service_type,
                                                              "name": name}})["service"]
        self.call("POST", "/endpoints", {"endpoint": {
            "service_id": service["id"], "interface": "public", "url": url,
            "region_id": "RegionOne"}})

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def _manage(home: Path, conf: Path, *args: str) -> None:
    subprocess.run([str(home / "bin" / "keystone-manage"), "--config-file", str(conf), *args],
                   check=True, capture_output=True, timeout=300)


def start(root: Path) -> Keystone:
    """Keystone under `root`: db_sync, fernet and credential keys, bootstrap, uWSGI."""
    home = install()
    port, admin_password = free_port(), secrets.token_hex(12)
    url = f"http://127.0.0.1:{port}/v3"
    for name in ("fernet-keys", "credential-keys"):
        (root / name).mkdir(mode=0o700, parents=True)
    conf = root / "keystone.conf"
    conf.write_text(f"""[DEFAULT]
log_file = {root / 'keystone.log'}
[database]
connection = sqlite:///{root / 'keystone.sqlite'}
[token]
provider = fernet
[fernet_tokens]
key_repository = {root / 'fernet-keys'}
[credential]
key_repository = {root / 'credential-keys'}
""")
    _manage(home, conf, "db_sync")
    _manage(home, conf, "fernet_setup", "--keystone-user", "root", "--keystone-group", "root")
    _manage(home, conf, "credential_setup", "--keystone-user", "root", "--keystone-group",
            "root")
    _manage(home, conf, "bootstrap", "--bootstrap-password", admin_password,
            "--bootstrap-admin-url", url, "--bootstrap-public-url", url,
            "--bootstrap-internal-url", url, "--bootstrap-region-id", "RegionOne")
    log = root / "uwsgi.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [str(home / "bin" / "uwsgi"), "--http-socket", f"127.0.0.1:{port}",
             "--module", "keystone.wsgi.api:application", "--home", str(home),
             "--master", "--processes", "1", "--threads", "4", "--lazy-apps",
             "--die-on-term", "--env", f"OS_KEYSTONE_CONFIG_FILES={conf}",
             # uWSGI's http-socket does not keep connections alive; without this header
             # keystoneauth reuses a pooled one that uWSGI has closed: resets, then 503s.
             "--add-header", "Connection: close"],
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 60
    token = None
    while token is None:
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise AssertionError("keystone did not start: " + log.read_text()[-2000:])
        try:
            resp = requests.post(url + "/auth/tokens", timeout=5, json={"auth": {"identity": {
                "methods": ["password"], "password": {"user": {
                    "name": "admin", "domain": {"id": "default"},
                    "password": admin_password}}},
                "scope": {"project": {"name": "admin", "domain": {"id": "default"}}}}})
            token = resp.headers.get("X-Subject-Token") if resp.status_code == 201 else None
        except requests.RequestException:
            pass
        if token is None:
            time.sleep(0.3)
    return Keystone(url, token, proc, log)
