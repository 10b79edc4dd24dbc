"""The operators' views are admin-only (Nova's policy defaults): a project member is refused
with 403 naming the rule, an admin is served; against a real chute-compute-api with a tokens
file."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
import requests

from tests.helpers.cluster import ComputeApiServer, prepare_compute_api
from tests.helpers.identity import Caller, callers, write_tokens

CALLS = [
    ("GET", "/os-services", None, "os_compute_api:os-services:list"),
    ("PUT", "/os-services/disable", {"host": "h", "binary": "nova-compute"},
     "os_compute_api:os-services:update"),
    ("DELETE", "/os-services/00000000-0000-0000-0000-000000000000", None,
     "os_compute_api:os-services:delete"),
    ("GET", "/os-hypervisors/detail", None, "os_compute_api:os-hypervisors:list-detail"),
    ("GET", "/os-aggregates", None, "os_compute_api:os-aggregates:index"),
    ("POST", "/os-aggregates", {"aggregate": {"name": "p"}},
     "os_compute_api:os-aggregates:create"),
]


@pytest.fixture(scope="module")
def who() -> dict[str, Caller]:
    return callers()


@pytest.fixture(scope="module")
def api(who: dict[str, Caller], tmp_path_factory: pytest.TempPathFactory,
        database_url: Callable[[], str]) -> Iterator[ComputeApiServer]:
    root = tmp_path_factory.mktemp("operators-policy")
    tokens = write_tokens(root / "tokens", who)
    server = prepare_compute_api(root / "api", None, database_url(), DEFAULT={
        "auth_strategy": "tokens", "tokens_file": str(tokens)}).start()
    yield server
    server.kill()


def call(api: ComputeApiServer, caller: Caller, method: str, path: str,
         body: object) -> requests.Response:
    return requests.request(method, f"{api.url}/v2.1{path}", json=body, timeout=30,
                            headers={"X-Auth-Token": caller.token or "",
                                     "OpenStack-API-Version": "compute 2.53"})


@pytest.mark.parametrize(("method", "path", "body", "rule"), CALLS)
def test_a_member_is_refused_naming_the_rule(api: ComputeApiServer, who: dict[str, Caller],
                                            method: str, path: str, body: object,
                                            rule: str) -> None:
    resp = call(api, who["member"], method, path, body)
    assert resp.status_code == 403, resp.text
    assert rule in resp.json()["forbidden"]["message"]


@pytest.mark.parametrize(("method", "path", "body", "rule"), CALLS)
def test_an_admin_is_served(api: ComputeApiServer, who: dict[str, Caller], method: str,
                            path: str, body: object, rule: str) -> None:
    resp = call(api, who["admin"], method, path, body)
    assert resp.status_code != 403, resp.text
    assert resp.status_code < 500, resp.text
