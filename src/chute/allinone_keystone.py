"""A real Keystone beside chute: installed, set up, run and given chute's identities.

One implementation for `chute up --keystone` and for the tests (tests/helpers/keystone.py):
Keystone 30 from PyPI in its own venv (created on first use, about a minute, then kept in a
cache directory: Keystone pins versions of oslo.* that chute's own environment must not be
bound to), SQLite, fernet tokens, served by uWSGI on loopback (Keystone's WSGI application;
uWSGI because it runs it unchanged, as DevStack does). `keystone-manage bootstrap` makes the
admin, its project, the admin/member/reader roles and the identity endpoint; `Admin` then
makes projects, users, role assignments and catalog entries through Keystone's own REST API.
"""

from __future__ import annotations

import grp
import os
import pwd
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

VERSION = "30.0.0"
PACKAGES = [f"keystone=={VERSION}", "uwsgi"]
REGION = "RegionOne"
DOMAIN = "default"
START_TIMEOUT = 60.0


class KeystoneError(Exception):
    """Keystone could not be installed, set up or started; the message says which step."""


def cache_dir() -> Path:
    """Where the Keystone venv is kept: $CHUTE_CACHE, else ~/.cache/chute."""
    return Path(os.environ.get("CHUTE_CACHE") or Path.home() / ".cache" / "chute")


def venv(cache: Path | None = None) -> Path:
    return (cache or cache_dir()) / f"keystone-{VERSION}"


def installed(home: Path) -> bool:
    python = home / "bin" / "python"
    probe = [str(python), "-c", "import importlib.metadata as m; print(m.version('keystone'))"]
    return (python.exists() and (home / "bin" / "uwsgi").exists()
            and subprocess.run(probe, capture_output=True, text=True).stdout.strip() == VERSION)


def install(cache: Path | None = None) -> Path:
    """The venv with Keystone and uWSGI, installed on first use."""
    home = venv(cache)
    if installed(home):
        return home
    home.parent.mkdir(parents=True, exist_ok=True)
    try:
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(home)], check=True,
                       capture_output=True)
        subprocess.run([str(home / "bin" / "pip"), "install", "-q", *PACKAGES], check=True,
                       timeout=900, capture_output=True)
    except subprocess.CalledProcessError as exc:
        tail = (exc.stderr or b"").decode(errors="replace").strip().splitlines()[-3:]
        raise KeystoneError(f"installing Keystone {VERSION} into {home} failed: "
                            f"{' / '.join(tail)}") from None
    return home


@dataclass(frozen=True)
class Site:
    """One Keystone's files under `root` and its loopback address."""

    root: Path
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v3"

    @property
    def conf(self) -> Path:
        return self.root / "keystone.conf"

    @property
    def log(self) -> Path:
        return self.root / "keystone.log"

    @property
    def database(self) -> Path:
        return self.root / "keystone.sqlite"


def _manage(home: Path, site: Site, *args: str) -> None:
    try:
        subprocess.run([str(home / "bin" / "keystone-manage"), "--config-file", str(site.conf),
                        *args], check=True, capture_output=True, timeout=300)
    except subprocess.CalledProcessError as exc:
        tail = (exc.stderr or b"").decode(errors="replace").strip().splitlines()[-2:]
        raise KeystoneError(f"keystone-manage {args[0]} failed: {' / '.join(tail)}") from None


def set_up(home: Path, site: Site, admin_password: str) -> None:
    """Config, database, fernet and credential keys, bootstrap (about 11 s); once per site."""
    for name in ("fernet-keys", "credential-keys"):
        (site.root / name).mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(site.conf, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as conf:
        conf.write(f"""[DEFAULT]
log_file = {site.log}
[database]
connection = sqlite:///{site.database}
[token]
provider = fernet
[fernet_tokens]
key_repository = {site.root / 'fernet-keys'}
[credential]
key_repository = {site.root / 'credential-keys'}
""")
    # Names, not numbers: keystone-manage looks them up with getpwnam/getgrnam.
    user = ["--keystone-user", pwd.getpwuid(os.getuid()).pw_name,
            "--keystone-group", grp.getgrgid(os.getgid()).gr_name]
    _manage(home, site, "db_sync")
    _manage(home, site, "fernet_setup", *user)
    _manage(home, site, "credential_setup", *user)
    _manage(home, site, "bootstrap", "--bootstrap-password", admin_password,
            "--bootstrap-admin-url", site.url, "--bootstrap-public-url", site.url,
            "--bootstrap-internal-url", site.url, "--bootstrap-region-id", REGION)


def serve(home: Path, site: Site) -> subprocess.Popen[bytes]:
    """uWSGI serving Keystone on the site's port, in its own session (its output in
    uwsgi.log)."""
    with open(site.root / "uwsgi.log", "ab") as out:
        return subprocess.Popen(
            [str(home / "bin" / "uwsgi"), "--http-socket", f"127.0.0.1:{site.port}",
             "--module", "keystone.wsgi.api:application", "--home", str(home),
             "--master", "--processes", "1", "--threads", "4", "--lazy-apps",
             "--die-on-term", "--env", f"OS_KEYSTONE_CONFIG_FILES={site.conf}",
             # uWSGI's http-socket does not keep connections alive; without this header
             # keystoneauth reuses a pooled one that uWSGI has closed: resets, then 503s.
             "--add-header", "Connection: close"],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True)


def password_token(url: str, user: str, password: str, project: dict[str, Any]) -> str | None:
    """A token of `user` scoped to `project` ({"id": ...} or {"name": ..., "domain": ...}),
    or None if Keystone refuses."""
    body: dict[str, Any] = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "name": user, "domain": {"id": DOMAIN}, "password": password}}},
        "scope": {"project": project}}}
    resp = requests.post(url + "/auth/tokens", json=body, timeout=30)
    return resp.headers.get("X-Subject-Token") if resp.status_code == 201 else None


def wait_ready(proc: subprocess.Popen[bytes], site: Site, admin_password: str) -> str:
    """The admin's token once Keystone answers; KeystoneError if it exits or never does."""
    deadline = time.monotonic() + START_TIMEOUT
    admin = {"name": "admin", "domain": {"id": DOMAIN}}
    while True:
        if proc.poll() is not None or time.monotonic() > deadline:
            stop(proc)
            tail = (site.root / "uwsgi.log").read_text(errors="replace")[-600:]
            raise KeystoneError(f"Keystone did not start on {site.url}: {tail}")
        try:
            token = password_token(site.url, "admin", admin_password, admin)
        except requests.RequestException:
            token = None
        if token is not None:
            return token
        time.sleep(0.3)


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@dataclass
class Admin:
    """Keystone's REST API as its admin: projects, roles, users, catalog (each made once)."""

    url: str  # .../v3
    token: str
    ids: dict[str, str] = field(default_factory=dict)  # role:NAME, project:NAME -> id

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        resp = requests.request(method, self.url + path, json=body, timeout=30,
                                headers={"X-Auth-Token": self.token})
        if resp.status_code >= 300:
            raise KeystoneError(f"Keystone answered {method} {path} with "
                                f"{resp.status_code}: {resp.text[:300]}")
        return resp.json() if resp.content else None

    def _find(self, kind: str, name: str) -> str | None:
        found = self.call("GET", f"/{kind}s?name={name}")[f"{kind}s"]
        return str(found[0]["id"]) if found else None

    def project(self, name: str) -> str:
        key = f"project:{name}"
        if key not in self.ids:
            self.ids[key] = self._find("project", name) or self.call(
                "POST", "/projects", {"project": {"name": name, "domain_id": DOMAIN}}
            )["project"]["id"]
        return self.ids[key]

    def role(self, name: str) -> str:
        key = f"role:{name}"
        if key not in self.ids:
            self.ids[key] = self._find("role", name) or self.call(
                "POST", "/roles", {"role": {"name": name}})["role"]["id"]
        return self.ids[key]

    def user(self, name: str, password: str, project: str, role: str) -> str:
        """A user with `role` on `project` (both made if missing); -> the project's id."""
        user_id = self._find("user", name) or self.call("POST", "/users", {"user": {
            "name": name, "password": password, "domain_id": DOMAIN}})["user"]["id"]
        project_id = self.project(project)
        self.call("PUT", f"/projects/{project_id}/users/{user_id}/roles/{self.role(role)}")
        return project_id

    def register(self, service_type: str, name: str, url: str) -> None:
        """A catalog entry: the service and its public endpoint in RegionOne."""
        service = self.call("POST", "/services", {"service": {"type": service_type,
                                                              "name": name}})["service"]
        self.call("POST", "/endpoints", {"endpoint": {
            "service_id": service["id"], "interface": "public", "url": url,
            "region_id": REGION}})


# -- chute's identities in a Keystone of its own (`chute up --keystone`) ---------------------

SERVICE_USER, SERVICE_PROJECT, SERVICE_ROLE = "chute", "service", "service"
DEMO = "demo"  # DevStack's names: project and user `demo`, role member
DEFAULT_PORT = 5000  # Keystone's


@dataclass(frozen=True)
class KeystoneSite:
    """A Keystone kept under DATA_DIR/keystone, and the passwords of chute's users in it."""

    site: Site
    admin_password: str
    service_password: str
    demo_password: str


def provision(admin: Admin, image_url: str, compute_url: str, passwords: KeystoneSite) -> None:
    """What chute needs in a fresh Keystone: the `chute` service user (role `service` in
    project `service`: it validates tokens for both services and the compute host calls the
    image service as it), a `demo` project and member user, and the image and compute
    endpoints in the catalog (clients find chute through it, with no endpoint given)."""
    admin.user(SERVICE_USER, passwords.service_password, SERVICE_PROJECT, SERVICE_ROLE)
    admin.user(DEMO, passwords.demo_password, DEMO, "member")
    admin.register("image", "glance", image_url)
    admin.register("compute", "nova", compute_url + "/v2.1")
