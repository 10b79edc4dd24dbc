"""A real Keystone 30 for the tests, through chute.allinone_keystone (the implementation
`chute up --keystone` runs): installed on first use into a venv kept in $CHUTE_TEST_CACHE
(else ~/.cache/chute), set up under the test's directory, served by uWSGI on a free loopback
port; then given projects, users with their tokens, roles and catalog entries."""

from __future__ import annotations

import os
import secrets
import subprocess
from dataclasses import dataclass
from pathlib import Path

from chute import allinone_keystone as ks
from tests.helpers.identity import Caller
from tests.helpers.services import free_port

VERSION = ks.VERSION


def cache() -> Path | None:
    found = os.environ.get("CHUTE_TEST_CACHE")
    return Path(found) if found else None


def install() -> Path:
    """The venv with Keystone and uWSGI, installed on first use (about a minute)."""
    return ks.install(cache())


@dataclass
class Keystone(ks.Admin):
    proc: subprocess.Popen[bytes] | None = None
    log: Path | None = None

    @property
    def admin_token(self) -> str:
        return self.token

    def user(self, name: str, project: str, role: str) -> tuple[str, str]:  # type: ignore[override]
        """A user with `role` on `project` (created); -> (its password, the project id)."""
        password = secrets.token_hex(12)
        return password, super().user(name, password, project, role)

    def token_of(self, user: str, password: str, project_id: str) -> str:
        token = ks.password_token(self.url, user, password, {"id": project_id})
        assert token is not None, f"Keystone refused {user}'s password"
        return token

    def caller(self, name: str, project: str, role: str) -> Caller:
        password, project_id = self.user(f"user-{name}", project, role)
        return Caller(name, self.token_of(f"user-{name}", password, project_id), project_id,
                      role)

    def stop(self) -> None:
        if self.proc is not None:
            ks.stop(self.proc)


def start(root: Path) -> Keystone:
    """Keystone under `root`: set up (db_sync, keys, bootstrap), then served by uWSGI."""
    home = install()
    site = ks.Site(root, free_port())
    admin_password = secrets.token_hex(12)
    ks.set_up(home, site, admin_password)
    proc = ks.serve(home, site)
    token = ks.wait_ready(proc, site, admin_password)
    return Keystone(site.url, token, proc=proc, log=root / "uwsgi.log")
