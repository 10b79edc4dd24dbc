"""The clouds of tests/auth: chute-api and chute-compute (real processes) with project
proj-a's images and server in place (tests.helpers.roles), in `tokens` mode (one tokens
file) and in `keystone` mode (a real Keystone 30, tests.helpers.keystone)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.helpers import keystone
from tests.helpers.identity import Caller, callers, write_tokens
from tests.helpers.keystone import Keystone
from tests.helpers.roles import Cloud, make_cloud
from tests.helpers.services import prepare_api, prepare_compute


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cloud]:
    who = callers()
    tokens = write_tokens(tmp_path_factory.mktemp("identity") / "tokens", who)
    auth = {"auth_strategy": "tokens", "tokens_file": str(tokens)}
    api = prepare_api(tmp_path_factory.mktemp("api"), DEFAULT=auth).start()
    compute = prepare_compute(tmp_path_factory.mktemp("compute"), api, DEFAULT=auth,
                              glance={"service_token": who["service"].token}).start()
    try:
        yield make_cloud(api, compute, who)
    finally:
        compute.kill()
        api.kill()


@dataclass(frozen=True)
class KeystoneCloud:
    keystone: Keystone
    cloud: Cloud


@pytest.fixture(scope="module")
def keystone_cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KeystoneCloud]:
    """The same cloud behind a real Keystone: its users' tokens, keystonemiddleware in both
    services (as a `chute` user with the service role), both registered in the catalog."""
    ks = keystone.start(tmp_path_factory.mktemp("keystone"))
    api = compute = None
    try:
        roles = {"reader": ("proj-a", "reader"), "member": ("proj-a", "member"),
                 "admin": ("proj-admin", "admin"), "other": ("proj-b", "member"),
                 "service": ("service", "service"), "pending": ("proj-m", "member"),
                 "accepted": ("proj-n", "member")}
        who = {name: ks.caller(name, project, role) for name, (project, role) in roles.items()}
        who["anonymous"] = Caller("anonymous", None)
        who["bad token"] = Caller("bad token", secrets.token_hex(16))
        password, _ = ks.user("chute", "service", "service")
        authtoken = {"auth_type": "password", "auth_url": ks.url, "www_authenticate_uri": ks.url,
                     "username": "chute", "password": password, "project_name": "service",
                     "user_domain_id": "default", "project_domain_id": "default"}
        auth = {"auth_strategy": "keystone"}
        api = prepare_api(tmp_path_factory.mktemp("api"), DEFAULT=auth,
                          keystone_authtoken=authtoken).start()
        # No [glance] service_token: the host logs in to Keystone as `chute` for its calls.
        compute = prepare_compute(tmp_path_factory.mktemp("compute"), api, DEFAULT=auth,
                                  keystone_authtoken=authtoken).start()
        ks.register("image", "glance", api.url)
        ks.register("compute", "nova", compute.url + "/v2.1")
        yield KeystoneCloud(ks, make_cloud(api, compute, who))
    finally:
        for service in (compute, api):
            if service is not None:
                service.kill()
        ks.stop()
