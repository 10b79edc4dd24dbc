"""Nova's quotas per project against real chute-api and chute-compute in `tokens` mode:
instances, cores and RAM checked at boot (min/max_count, concurrent boots), /limits and
os-quota-sets as the project and as an admin see them."""

from __future__ import annotations

import io
import secrets
import subprocess
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from chute.client.images import ImageClient
from tests.helpers.authed import start_tokens
from tests.helpers.identity import Caller, write_tokens
from tests.helpers.services import ComputeServer, prepare_compute

DATA = b"\x5a" * 65536


@dataclass(frozen=True)
class QuotaCloud:
    compute: ComputeServer
    who: dict[str, Caller]
    image: str  # proj-q's private image


@pytest.fixture(scope="module")
def qcloud(tmp_path_factory: pytest.TempPathFactory,
           database_url: Callable[[], str]) -> Iterator[QuotaCloud]:
    who = {c.name: c for c in (
        Caller("member", secrets.token_hex(16), "proj-q", "member"),
        Caller("reader", secrets.token_hex(16), "proj-q", "reader"),
        Caller("other", secrets.token_hex(16), "proj-o", "member"),
        Caller("admin", secrets.token_hex(16), "proj-admin", "admin"),
        Caller("service", secrets.token_hex(16), "service", "service"))}
    pair = start_tokens(tmp_path_factory, who, database_url())
    try:
        client = ImageClient(pair.api.url, who["member"].token)
        image = client.create(name="q", disk_format="raw", container_format="bare")
        client.upload(image["id"], io.BytesIO(DATA), len(DATA))
        yield QuotaCloud(pair.compute, who, str(image["id"]))
    finally:
        pair.kill()


def call(cloud: QuotaCloud, caller: str, method: str, path: str,
         body: object = None) -> requests.Response:
    return requests.request(method, f"{cloud.compute.url}/v2.1{path}", json=body, timeout=30,
                            headers=cloud.who[caller].headers())


def boot(cloud: QuotaCloud, flavor: str = "1", min_count: int = 1,
         max_count: int = 1) -> requests.Response:
    return call(cloud, "member", "POST", "/servers", {"server": {
        "name": "q", "imageRef": cloud.image, "flavorRef": flavor,
        "min_count": min_count, "max_count": max_count}})


def absolute(cloud: QuotaCloud, caller: str = "member") -> dict[str, int]:
    resp = call(cloud, caller, "GET", "/limits")
    assert resp.status_code == 200, resp.text
    return dict(resp.json()["limits"]["absolute"])


def servers_of_project(cloud: QuotaCloud) -> int:
    return len(call(cloud, "member", "GET", "/servers").json()["servers"])


def set_quota(cloud: QuotaCloud, caller: str = "admin", **values: object) -> requests.Response:
    return call(cloud, caller, "PUT", "/os-quota-sets/proj-q", {"quota_set": values})


def test_a_fresh_project_has_novas_defaults(qcloud: QuotaCloud) -> None:
    limits = absolute(qcloud)
    assert (limits["maxTotalInstances"], limits["maxTotalCores"],
            limits["maxTotalRAMSize"]) == (10, 20, 51200)
    assert limits["totalInstancesUsed"] == limits["totalCoresUsed"] == 0
    shown = call(qcloud, "reader", "GET", "/os-quota-sets/proj-q").json()["quota_set"]
    assert (shown["id"], shown["instances"], shown["cores"], shown["ram"]) == (
        "proj-q", 10, 20, 51200)
    assert shown["metadata_items"] == 128 and shown["key_pairs"] == 100


def test_a_boot_past_the_instances_quota_is_refused_with_novas_message(
        qcloud: QuotaCloud) -> None:
    assert boot(qcloud, max_count=9).status_code == 202
    refused = boot(qcloud, min_count=3, max_count=3)
    assert refused.status_code == 403, refused.text
    assert refused.json()["forbidden"]["message"] == (
        "Quota exceeded for instances: Requested 3, but already used 9 of 10 instances")
    assert servers_of_project(qcloud) == 9
    # min_count 1, max_count 3: Nova boots what fits (one).
    assert boot(qcloud, min_count=1, max_count=3).status_code == 202
    assert servers_of_project(qcloud) == 10
    limits = absolute(qcloud)
    assert (limits["totalInstancesUsed"], limits["totalCoresUsed"],
            limits["totalRAMUsed"]) == (10, 10, 5120)
    assert boot(qcloud).json()["forbidden"]["message"] == (
        "Quota exceeded for instances: Requested 1, but already used 10 of 10 instances")
    # Another project counts its own servers.
    assert absolute(qcloud, "other")["totalInstancesUsed"] == 0


def test_concurrent_boots_never_pass_the_quota_together(qcloud: QuotaCloud) -> None:
    assert set_quota(qcloud, instances=12).status_code == 200
    with ThreadPoolExecutor(8) as pool:
        statuses = sorted(pool.map(lambda _: boot(qcloud).status_code, range(8)))
    assert statuses == [202] * 2 + [403] * 6
    assert servers_of_project(qcloud) == 12


def test_ram_and_cores_are_counted_from_the_flavors(qcloud: QuotaCloud) -> None:
    assert set_quota(qcloud, instances=-1, ram=6144 + 2047).status_code == 200
    refused = boot(qcloud, flavor="2")  # m1.small: 2048 MiB
    assert refused.status_code == 403, refused.text
    assert refused.json()["forbidden"]["message"] == (
        "Quota exceeded for ram: Requested 2048, but already used 6144 of 8191 ram")
    assert set_quota(qcloud, ram=-1, cores=12).status_code == 200
    assert boot(qcloud, flavor="2", min_count=2, max_count=2).json()["forbidden"][
        "message"] == "Quota exceeded for cores: Requested 2, but already used 12 of 12 cores"


def test_quota_sets_follow_novas_policy_and_validation(qcloud: QuotaCloud) -> None:
    assert call(qcloud, "other", "GET", "/os-quota-sets/proj-q").status_code == 403
    assert set_quota(qcloud, "member", instances=100).status_code == 403
    below = set_quota(qcloud, instances=1)
    assert below.status_code == 400
    assert "must be greater than or equal to already used and reserved 12" in below.text
    assert set_quota(qcloud, instances="ten").status_code == 400
    assert set_quota(qcloud, cores=2**31).status_code == 400
    assert "metadata_items" in set_quota(qcloud, metadata_items=5).text
    assert set_quota(qcloud, instances=1, force=True).json()["quota_set"]["instances"] == 1
    detail = call(qcloud, "member", "GET", "/os-quota-sets/proj-q/detail").json()["quota_set"]
    assert detail["instances"] == {"limit": 1, "in_use": 12, "reserved": 0}
    defaults = call(qcloud, "other", "GET", "/os-quota-sets/proj-q/defaults").json()
    assert defaults["quota_set"]["instances"] == 10
    assert call(qcloud, "admin", "DELETE", "/os-quota-sets/proj-q").status_code == 202
    assert absolute(qcloud)["maxTotalInstances"] == 10


def test_quota_options_set_the_defaults_and_a_bad_one_stops_the_agent(tmp_path: Path) -> None:
    who = {"member": Caller("member", secrets.token_hex(16), "proj-c", "member")}
    tokens = write_tokens(tmp_path / "tokens", who)
    auth = {"auth_strategy": "tokens", "tokens_file": str(tokens)}
    (tmp_path / "good").mkdir()
    compute = prepare_compute(tmp_path / "good", DEFAULT=auth,
                              quota={"instances": 3, "ram": -1}).start()
    try:
        limits = requests.get(f"{compute.url}/v2.1/limits", headers=who["member"].headers(),
                              timeout=10).json()["limits"]["absolute"]
        assert (limits["maxTotalInstances"], limits["maxTotalCores"],
                limits["maxTotalRAMSize"]) == (3, 20, -1)
    finally:
        compute.kill()
    (tmp_path / "bad").mkdir()
    bad = prepare_compute(tmp_path / "bad", DEFAULT=auth, quota={"cores": -2})
    done = subprocess.run([str(Path(sys.executable).parent / "chute-compute"), "--config-file",
                           str(bad.conf_path)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert f"{bad.conf_path}: [quota] cores" in done.stderr, done.stderr
