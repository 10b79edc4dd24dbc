"""Callers for auth tests: a tokens file (auth_strategy = tokens) and who is in it."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Caller:
    """One row of the tokens file; `token` None is a caller who sends none."""

    name: str
    token: str | None
    project: str = ""
    roles: str = ""

    def headers(self, **extra: str) -> dict[str, str]:
        found = {"X-Auth-Token": self.token} if self.token else {}
        return {**found, **extra}


def callers() -> dict[str, Caller]:
    """anonymous, a bad token, and one caller per role and relation to project `proj-a`'s
    images: its reader and member, an admin, another project's member, the service, and the
    members of a shared image (proj-m pending, proj-n accepted)."""
    made = [Caller("reader", secrets.token_hex(16), "proj-a", "reader"),
            Caller("member", secrets.token_hex(16), "proj-a", "member"),
            Caller("admin", secrets.token_hex(16), "proj-admin", "admin"),
            Caller("other", secrets.token_hex(16), "proj-b", "member"),
            Caller("service", secrets.token_hex(16), "service", "service"),
            Caller("pending", secrets.token_hex(16), "proj-m", "member"),
            Caller("accepted", secrets.token_hex(16), "proj-n", "member")]
    found = {caller.name: caller for caller in made}
    found["anonymous"] = Caller("anonymous", None)
    found["bad token"] = Caller("bad token", secrets.token_hex(16))  # in no file
    return found


def write_tokens(path: Path, listed: dict[str, Caller]) -> Path:
    """The tokens file of `listed` (those with a project), mode 0600."""
    lines = [f"{c.token} user-{c.name.replace(' ', '-')} {c.project} {c.roles}"
             for c in listed.values() if c.project]
    path.write_text("\n".join(lines) + "\n")
    path.chmod(0o600)
    return path
