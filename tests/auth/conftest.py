"""The clouds of tests/auth: chute-api and chute-compute (real processes) with project
proj-a's images and server in place (tests.helpers.roles), in `tokens` mode (one tokens
file) and in `keystone` mode (a real Keystone 30, tests.helpers.keystone)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.helpers.identity import callers, write_tokens
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
