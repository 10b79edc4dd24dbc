"""The `chute` CLI logs in to a real Keystone as the OpenStack clients do (--os-* options,
OS_* variables, OS_CLOUD and clouds.yaml), takes its token and finds chute in the catalog;
each way of failing is one line and exit status 1. (`chute up --keystone`'s openrc and
clouds.yaml: tests/test_allinone_keystone.py.)"""

from __future__ import annotations

import pytest

from tests.helpers.cli import assert_one_line_error, run_chute
from tests.helpers.services import free_port


@pytest.fixture(scope="module")
def member(keystone_cloud) -> dict[str, str]:
    """OS_* variables of a new member of proj-a who logs in with a password."""
    password, _ = keystone_cloud.keystone.user("cli-user", "proj-a", "member")
    return {"OS_AUTH_URL": keystone_cloud.keystone.url, "OS_USERNAME": "cli-user",
            "OS_PASSWORD": password, "OS_PROJECT_NAME": "proj-a",
            "OS_USER_DOMAIN_NAME": "Default", "OS_PROJECT_DOMAIN_NAME": "Default"}


def _options(env: dict[str, str]) -> list[str]:
    """The same login as --os-* options."""
    return [arg for name, value in env.items()
            for arg in ("--" + name.lower().replace("_", "-"), value)]


def test_a_password_in_the_environment_reaches_both_services_through_the_catalog(
        keystone_cloud, member):
    cloud = keystone_cloud.cloud
    shown = run_chute("image-show", cloud.private, "-f", "json", env=member)
    assert shown.returncode == 0, shown.stderr
    assert shown.json()["id"] == cloud.private
    server = run_chute("show", cloud.server, "-f", "json", env=member)
    assert server.returncode == 0, server.stderr
    assert server.json()["id"] == cloud.server


def test_the_same_login_as_options(keystone_cloud, member):
    listed = run_chute(*_options(member), "image-list", "-f", "json")
    assert listed.returncode == 0, listed.stderr
    assert keystone_cloud.cloud.private in {image["id"] for image in listed.json()}


def test_a_cloud_of_clouds_yaml(keystone_cloud, member, tmp_path):
    clouds = tmp_path / "clouds.yaml"
    clouds.write_text(f"""clouds:
  mine:
    auth_type: password
    auth:
      auth_url: {member['OS_AUTH_URL']}
      username: cli-user
      password: {member['OS_PASSWORD']}
      project_name: proj-a
      user_domain_name: Default
      project_domain_name: Default
    region_name: RegionOne
""")
    env = {"OS_CLOUD": "mine", "OS_CLIENT_CONFIG_FILE": str(clouds)}
    listed = run_chute("list", "-f", "json", env=env)
    assert listed.returncode == 0, listed.stderr
    assert keystone_cloud.cloud.server in {server["id"] for server in listed.json()}
    # An option overrides the cloud, as with the openstack client.
    refused = run_chute("--os-password", "wrong", "image-list", env=env)
    assert_one_line_error(refused, "refused the credentials of cli-user", "(HTTP 401)")


def test_a_token_with_an_auth_url_is_scoped_and_finds_the_catalog(keystone_cloud):
    member = keystone_cloud.cloud.callers["member"]
    env = {"OS_AUTH_URL": keystone_cloud.keystone.url, "OS_TOKEN": member.token,
           "OS_PROJECT_ID": member.project}
    shown = run_chute("image-show", keystone_cloud.cloud.private, "-f", "json", env=env)
    assert shown.returncode == 0, shown.stderr


def test_a_token_and_endpoints_without_keystone_still_work(keystone_cloud):
    cloud = keystone_cloud.cloud
    shown = run_chute("image-show", cloud.private, "-f", "json", image_url=cloud.api.url,
                      env={"OS_AUTH_TOKEN": cloud.callers["member"].token})
    assert shown.returncode == 0, shown.stderr


def test_a_given_endpoint_overrides_the_catalog(member):
    dead = f"http://127.0.0.1:{free_port()}"
    result = run_chute("--os-image-url", dead, "image-list", env=member)
    assert_one_line_error(result, f"cannot reach {dead}")


@pytest.mark.parametrize(("change", "args", "fragments"), [
    ({"OS_PASSWORD": "wrong"}, [], ["Keystone at", "refused the credentials of cli-user",
                                    "(HTTP 401)"]),
    ({"OS_PASSWORD": ""}, [], ["no password (--os-password, OS_PASSWORD)"]),
    ({}, ["--os-region-name", "Nowhere"],
     ["has no image endpoint (interface public, region Nowhere)", "--os-image-url"]),
    ({}, ["--os-interface", "admin"], ["has no image endpoint (interface admin)"]),
    ({"OS_CLOUD": "absent"}, [], ["cloud 'absent' (--os-cloud) is in no clouds.yaml"]),
], ids=["bad password", "no password", "no endpoint in the region", "no such interface",
        "no such cloud"])
def test_a_failed_login_is_one_line(member, change, args, fragments, tmp_path):
    env = {**member, "OS_CLIENT_CONFIG_FILE": str(tmp_path / "none.yaml"), **change}
    assert_one_line_error(run_chute(*args, "image-list", env=env), *fragments)


def test_keystone_down_is_one_line(member):
    down = f"http://127.0.0.1:{free_port()}/v3"
    result = run_chute("image-list", env={**member, "OS_AUTH_URL": down})
    assert_one_line_error(result, f"cannot reach Keystone at {down}")
