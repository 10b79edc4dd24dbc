"""The clouds of tests/auth: chute-api and chute-compute (real processes) with project
proj-a's images and server in place (tests.helpers.roles), in `tokens` mode (one tokens
file) and in `keystone` mode (a real Keystone 30, tests.helpers.keystone)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.helpers import keystone
from tests.helpers.authed import Pair, start_keystone, start_tokens
from tests.helpers.identity import Caller, callers
from tests.helpers.keystone import Keystone
from tests.helpers.roles import Cloud, make_cloud


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cloud]:
    who = callers()
    pair = start_tokens(tmp_path_factory, who)
    try:
        yield make_cloud(pair.api, pair.compute, who)
    finally:
        pair.kill()


@dataclass(frozen=True)
class KeystoneCloud:
    keystone: Keystone
    cloud: Cloud


@pytest.fixture(scope="package")
def keystone_cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KeystoneCloud]:
    """The same cloud behind a real Keystone: its users' tokens, keystonemiddleware in both
    services (as a `chute` user with the service role), both registered in the catalog.
    One for the package: test_keystone.py and test_cli_login.py share its set-up."""
    ks = keystone.start(tmp_path_factory.mktemp("keystone"))
    pair: Pair | None = None
    try:
        roles = {"reader": ("proj-a", "reader"), "member": ("proj-a", "member"),
                 "admin": ("proj-admin", "admin"), "other": ("proj-b", "member"),
                 "service": ("service", "service"), "pending": ("proj-m", "member"),
                 "accepted": ("proj-n", "member")}
        who = {name: ks.caller(name, project, role) for name, (project, role) in roles.items()}
        who["anonymous"] = Caller("anonymous", None)
        who["bad token"] = Caller("bad token", secrets.token_hex(16))
        pair = start_keystone(tmp_path_factory, ks)
        yield KeystoneCloud(ks, make_cloud(pair.api, pair.compute, who))
    finally:
        if pair is not None:
            pair.kill()
        ks.stop()
