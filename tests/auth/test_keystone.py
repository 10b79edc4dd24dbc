"""`auth_strategy = keystone` with a real Keystone 30: the roles table of tests/auth runs
unchanged against its users' tokens (keystonemiddleware validating them in both services),
and the OpenStack clients find chute through Keystone's catalog with password auth."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import openstack
import pytest
import requests

from tests.helpers.roles import ORDER, TABLE
from tests.helpers.services import prepare_api

ROWS = [pytest.param(op, caller, want, id=f"{op} as {caller}")
        for op, (_, wants) in TABLE.items() for caller, want in zip(ORDER, wants, strict=True)]


@pytest.mark.parametrize(("operation", "caller", "want"), ROWS)
def test_who_may_do_what_with_keystone(keystone_cloud, operation, caller, want):
    cloud = keystone_cloud.cloud
    resp = TABLE[operation][0](cloud, cloud.callers[caller])
    assert resp.status_code == want, resp.text


def test_identity_headers_from_a_client_change_nothing(keystone_cloud):
    cloud = keystone_cloud.cloud
    spoofed = {"X-Roles": "admin", "X-Project-Id": cloud.callers["member"].project,
               "X-Identity-Status": "Confirmed", "X-Service-Roles": "service"}
    other = cloud.callers["other"]
    shown = requests.get(f"{cloud.api.url}/v2/images/{cloud.private}",
                         headers=other.headers(**spoofed), timeout=10)
    assert shown.status_code == 404
    anonymous = requests.get(f"{cloud.compute.url}/v2.1/servers/{cloud.server}",
                             headers=spoofed, timeout=10)
    assert anonymous.status_code == 401


def _password_user(keystone_cloud, name: str) -> tuple[str, str]:
    """A new member of proj-a who logs in with a password."""
    password, _ = keystone_cloud.keystone.user(name, "proj-a", "member")
    return name, password


def test_glanceclient_finds_the_image_service_in_the_catalog(keystone_cloud):
    user, password = _password_user(keystone_cloud, "glance-user")
    glance = Path(sys.executable).parent / "glance"
    listed = subprocess.run(
        [str(glance), "--os-auth-url", keystone_cloud.keystone.url, "--os-username", user,
         "--os-password", password, "--os-project-name", "proj-a",
         "--os-user-domain-id", "default", "--os-project-domain-id", "default",
         "image-list"], capture_output=True, text=True, timeout=120, check=False)
    assert listed.returncode == 0, listed.stderr
    assert keystone_cloud.cloud.private in listed.stdout


def test_openstacksdk_with_password_auth_through_the_catalog(keystone_cloud):
    user, password = _password_user(keystone_cloud, "sdk-user")
    cloud = keystone_cloud.cloud
    conn = openstack.connect(auth_url=keystone_cloud.keystone.url, username=user,
                             password=password, project_name="proj-a",
                             user_domain_id="default", project_domain_id="default")
    assert cloud.private in {image.id for image in conn.image.images()}
    assert cloud.server in {server.id for server in conn.compute.servers()}


def test_the_compute_host_copied_directly_as_its_keystone_service_user(keystone_cloud):
    """No static token in its config: it logged in to Keystone as `chute` (service role) to
    read the locations, then copied through the shared filesystem."""
    log = keystone_cloud.cloud.compute.log_text()
    assert "Successfully transferred using file" in log


@pytest.mark.parametrize("cache_time", [2, -1], ids=["cached for 2 s", "no cache"])
def test_a_revoked_token_is_refused_once_token_cache_time_is_up(keystone_cloud, tmp_path,
                                                                cache_time):
    """keystonemiddleware's meaning, kept by chute's cache of confirmed tokens: a token
    checked with Keystone is trusted for token_cache_time seconds, then checked again
    (-1: checked on every request)."""
    ks = keystone_cloud.keystone
    name = f"cache{cache_time}"
    password, _ = ks.user(f"chute-{name}", "service", "service")
    authtoken = {"auth_type": "password", "auth_url": ks.url, "www_authenticate_uri": ks.url,
                 "username": f"chute-{name}", "password": password, "project_name": "service",
                 "user_domain_id": "default", "project_domain_id": "default",
                 "token_cache_time": str(cache_time)}
    api = prepare_api(tmp_path, DEFAULT={"auth_strategy": "keystone"},
                      keystone_authtoken=authtoken).start()
    try:
        user, user_password = _password_user(keystone_cloud, f"revoked-{name}")
        token = ks.token_of(user, user_password, ks.project("proj-a"))

        def status() -> int:
            return requests.get(f"{api.url}/v2/images", headers={"X-Auth-Token": token},
                                timeout=10).status_code

        assert [status() for _ in range(6)] == [200] * 6  # both workers have it cached
        last_check = time.time()
        revoked = requests.delete(f"{ks.url}/auth/tokens", timeout=10, headers={
            "X-Auth-Token": ks.admin_token, "X-Subject-Token": token})
        assert revoked.status_code == 204, revoked.text
        # Every worker's entry comes from a check made before last_check: all gone
        # token_cache_time on.
        time.sleep(max(0.0, last_check + max(cache_time, 0) + 0.1 - time.time()))
        assert [status() for _ in range(6)] == [401] * 6
    finally:
        api.kill()


def test_a_cached_token_brings_back_its_identity_and_no_other_header(keystone_cloud):
    """The cache of confirmed tokens sets again what keystonemiddleware set, never another
    header of the request that filled it (here the microversion asked first)."""
    cloud = keystone_cloud.cloud
    member = keystone_cloud.keystone.caller("fresh-member", "proj-a", "member")  # uncached
    url = f"{cloud.compute.url}/v2.1/servers/{cloud.server}"

    def version(**asked: str) -> str:
        resp = requests.get(url, headers=member.headers(**asked), timeout=10)
        assert resp.status_code == 200, resp.text
        return resp.headers["X-OpenStack-Nova-API-Version"]

    assert {version(**{"X-OpenStack-Nova-API-Version": "2.79"}) for _ in range(6)} == {"2.79"}
    assert {version() for _ in range(6)} == {"2.1"}


def test_a_service_token_beside_the_users_is_checked_as_keystonemiddleware_does(
        keystone_cloud):
    """As Nova calls Glance (the user's token and its own): a valid service token passes, a
    bad one is 401, and a cached user token does not carry a bad service token through."""
    cloud = keystone_cloud.cloud
    member = keystone_cloud.keystone.caller("service-pair", "proj-a", "member")  # uncached
    url = f"{cloud.api.url}/v2/images/{cloud.private}"

    def status(service_token: str | None) -> int:
        extra = {"X-Service-Token": service_token} if service_token else {}
        return requests.get(url, headers=member.headers(**extra), timeout=10).status_code

    assert [status(None) for _ in range(4)] == [200] * 4
    assert [status(cloud.callers["service"].token) for _ in range(4)] == [200] * 4
    assert [status("not-a-token") for _ in range(4)] == [401] * 4
