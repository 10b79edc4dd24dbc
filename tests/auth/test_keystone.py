"""`auth_strategy = keystone` with a real Keystone 30: the roles table of tests/auth runs
unchanged against its users' tokens (keystonemiddleware validating them in both services),
and the OpenStack clients find chute through Keystone's catalog with password auth."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import openstack
import pytest
import requests

from tests.helpers.roles import ORDER, TABLE

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
