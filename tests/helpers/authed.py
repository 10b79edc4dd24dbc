"""chute-api and chute-compute started together in an auth mode, the way tests/auth,
tests/compute and tests/clients all need them: `tokens` (one tokens file, the compute host
calling as the file's service) or `keystone` (keystonemiddleware in both, the host logging in
as Keystone's `chute` service user, both registered in the catalog)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from tests.helpers.identity import Caller, write_tokens
from tests.helpers.keystone import Keystone
from tests.helpers.services import (
    ApiServer,
    ComputeServer,
    compute_on_database,
    prepare_api,
    prepare_compute,
)


@dataclass(frozen=True)
class Pair:
    api: ApiServer
    compute: ComputeServer

    def kill(self) -> None:
        self.compute.kill()
        self.api.kill()


def start_tokens(factory: pytest.TempPathFactory, who: dict[str, Caller],
                 compute_database: str = "") -> Pair:
    """Both services reading one tokens file of `who` (which must hold a `service`); the
    compute state in `compute_database` (a `database_url()`; "" is its SQLite file)."""
    tokens = write_tokens(factory.mktemp("identity") / "tokens", who)
    auth = {"auth_strategy": "tokens", "tokens_file": str(tokens)}
    return _start(factory, {"DEFAULT": auth}, compute_on_database(
        compute_database, {"DEFAULT": auth, "glance": {"service_token": who["service"].token}}))


def start_keystone(factory: pytest.TempPathFactory, ks: Keystone) -> Pair:
    """Both services behind `ks`; no [glance] service_token: the host logs in as `chute`."""
    password, _ = ks.user("chute", "service", "service")
    authtoken = {"auth_type": "password", "auth_url": ks.url, "www_authenticate_uri": ks.url,
                 "username": "chute", "password": password, "project_name": "service",
                 "user_domain_id": "default", "project_domain_id": "default"}
    sections = {"DEFAULT": {"auth_strategy": "keystone"}, "keystone_authtoken": authtoken}
    pair = _start(factory, sections, sections)
    ks.register("image", "glance", pair.api.url)
    ks.register("compute", "nova", pair.compute.url + "/v2.1")
    return pair


def _start(factory: pytest.TempPathFactory, api_conf: dict[str, dict[str, object]],
           compute_conf: dict[str, dict[str, object]]) -> Pair:
    api = prepare_api(factory.mktemp("api"), **api_conf).start()
    try:
        compute = prepare_compute(factory.mktemp("compute"), api, **compute_conf).start()
    except BaseException:
        api.kill()
        raise
    return Pair(api, compute)
