"""The auth options at start: a bad value stops the service naming the option and the file;
noauth says in the log that it is for development only; a policy file overrides a rule."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import requests

from tests.helpers.identity import callers, write_tokens
from tests.helpers.services import prepare_api, prepare_compute, write_conf

BIN = Path(sys.executable).parent


def _fresh(path: Path) -> Path:
    path.mkdir()
    return path


def _start_fails(service: str, conf: Path) -> str:
    """The one stderr line of `service` started on `conf` (it must exit 1 at once)."""
    proc = subprocess.run([str(BIN / service), "--config-file", str(conf)],
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    return lines[0]


@pytest.fixture
def tokens(tmp_path):
    return write_tokens(tmp_path / "tokens", callers())


@pytest.mark.parametrize("service", ["chute-api", "chute-compute"])
@pytest.mark.parametrize(("mode", "problem"), [(0o640, "mode 0640"), (0o604, "mode 0604")])
def test_a_tokens_file_others_may_read_is_refused(tmp_path, tokens, service, mode, problem):
    tokens.chmod(mode)
    conf = tmp_path / "s.conf"
    write_conf(conf, {"DEFAULT": {"auth_strategy": "tokens", "tokens_file": str(tokens)}})
    line = _start_fails(service, conf)
    assert f"{conf}: [DEFAULT] tokens_file: {tokens} holds secrets" in line
    assert problem in line and f"chmod 600 {tokens}" in line


@pytest.mark.parametrize(("text", "problem"), [
    ("", "lists no token"),
    ("abc user project member\n", "line 1: the token is shorter than 16 characters"),
    ("0123456789abcdef user project\n",
     "line 1: expected TOKEN USER_ID PROJECT_ID ROLES, found 3 fields"),
    ("0123456789abcdef u p member\n0123456789abcdef v q reader\n",
     "line 2: this token is listed twice"),
])
def test_a_bad_tokens_file_is_refused_naming_the_line(tmp_path, text, problem):
    tokens = tmp_path / "tokens"
    tokens.write_text(text)
    tokens.chmod(0o600)
    conf = tmp_path / "api.conf"
    write_conf(conf, {"DEFAULT": {"auth_strategy": "tokens", "tokens_file": str(tokens)}})
    assert _start_fails("chute-api", conf) == (
        f"chute-api: {conf}: [DEFAULT] tokens_file: {tokens} {problem}")


@pytest.mark.parametrize(("sections", "where", "problem"), [
    ({"DEFAULT": {"auth_strategy": "tokens"}}, "[DEFAULT] tokens_file",
     "is needed by auth_strategy = tokens"),
    ({"DEFAULT": {"auth_strategy": "ldap"}}, "[DEFAULT] auth_strategy", "is not one of"),
    ({"DEFAULT": {"bind_host": "0.0.0.0"}}, "[DEFAULT] auth_strategy",
     "is not set and bind_host 0.0.0.0 is not a loopback address"),
    ({"DEFAULT": {"auth_strategy": "keystone"}}, "[keystone_authtoken] www_authenticate_uri",
     "is needed by auth_strategy = keystone"),
    ({"DEFAULT": {"auth_strategy": "keystone"},
      "keystone_authtoken": {"www_authenticate_uri": "http://127.0.0.1:9/v3"}},
     "[keystone_authtoken] auth_url", "is needed by auth_strategy = keystone"),
    ({"keystone_authtoken": {"token_cache_time": "5m"}}, "[keystone_authtoken] token_cache_time",
     "'5m' is not a number of seconds"),
    ({"keystone_authtoken": {"admin_token": "x"}}, "[keystone_authtoken] admin_token",
     "unknown option"),
    ({"oslo_policy": {"policy_file": "/nonexistent/policy.yaml"}}, "[oslo_policy] policy_file",
     "/nonexistent/policy.yaml cannot be read"),
])
@pytest.mark.parametrize("service", ["chute-api", "chute-compute"])
def test_bad_auth_options_stop_the_service_naming_them(tmp_path, service, sections, where,
                                                       problem):
    conf = tmp_path / "s.conf"
    write_conf(conf, sections)
    line = _start_fails(service, conf)
    assert line.startswith(f"{service}: {conf}: {where}: "), line
    assert problem in line, line


def test_a_policy_file_that_is_no_policy_stops_the_service(tmp_path):
    policy = tmp_path / "policy.yaml"
    policy.write_text('"get_image": [\n')
    conf = tmp_path / "api.conf"
    write_conf(conf, {"oslo_policy": {"policy_file": str(policy)}})
    line = _start_fails("chute-api", conf)
    assert line.startswith(f"chute-api: {conf}: [oslo_policy] policy_file: {policy} is not a "
                           f"policy file"), line


def test_a_policy_file_overrides_a_default_rule(tmp_path):
    """As in Glance: a rule of the file replaces the default (here: nobody creates)."""
    who = callers()
    tokens = write_tokens(tmp_path / "tokens", who)
    policy = tmp_path / "policy.yaml"
    policy.write_text('"add_image": "!"\n')
    api = prepare_api(_fresh(tmp_path / "api"), DEFAULT={"auth_strategy": "tokens",
                                                  "tokens_file": str(tokens)},
                      oslo_policy={"policy_file": str(policy)}).start()
    try:
        refused = requests.post(f"{api.url}/v2/images", json={"name": "x"},
                                headers=who["admin"].headers(), timeout=10)
        assert refused.status_code == 403, refused.text
        assert "add_image" in refused.text
    finally:
        api.kill()


def test_noauth_says_it_is_for_development_only(start_api):
    api = start_api()
    assert "auth_strategy = noauth: every caller is an admin. For development only" in \
        api.log_text()


def test_keystone_mode_refuses_a_request_without_a_token(tmp_path):
    """keystonemiddleware answers 401 without asking Keystone when no token is sent; the
    version documents stay open."""
    keystone = {"auth_type": "password", "auth_url": "http://127.0.0.1:9/v3",
                "www_authenticate_uri": "http://127.0.0.1:9/v3"}
    api = prepare_api(_fresh(tmp_path / "api"), DEFAULT={"auth_strategy": "keystone"},
                      keystone_authtoken=keystone)
    api.start()
    try:
        assert requests.get(f"{api.url}/versions", timeout=10).status_code == 200
        refused = requests.get(f"{api.url}/v2/images", timeout=10,
                               headers={"X-Roles": "admin", "X-Identity-Status": "Confirmed"})
        assert refused.status_code == 401
        assert "Keystone uri" in refused.headers.get("WWW-Authenticate", "")
    finally:
        api.kill()
    compute = prepare_compute(_fresh(tmp_path / "compute"), None,
                              DEFAULT={"auth_strategy": "keystone"}, keystone_authtoken=keystone)
    compute.start()
    try:
        assert requests.get(f"{compute.url}/v2.1/servers", timeout=10).status_code == 401
    finally:
        compute.kill()


def test_the_storage_quota_counts_the_real_owner(tmp_path):
    who = callers()
    tokens = write_tokens(tmp_path / "tokens", who)
    api = prepare_api(_fresh(tmp_path / "api"), DEFAULT={"auth_strategy": "tokens",
                                                  "tokens_file": str(tokens),
                                                  "user_storage_quota": "100KB"}).start()

    def upload(caller: str, **fields: str) -> int:
        headers = who[caller].headers()
        made = requests.post(f"{api.url}/v2/images", json={"name": "q", "disk_format": "raw",
                                                            "container_format": "bare",
                                                            **fields},
                             headers=headers, timeout=10)
        if made.status_code != 201:
            return made.status_code
        return requests.put(f"{api.url}/v2/images/{made.json()['id']}/file",
                            data=b"\1" * 65536, timeout=10,
                            headers={**headers, "Content-Type": "application/octet-stream"}
                            ).status_code

    try:
        assert upload("member") == 204
        assert upload("member") == 413  # 128 KiB would exceed proj-a's 100 KiB
        assert upload("member", owner="proj-fresh") == 403  # no escaping by a new owner
        assert upload("other") == 204  # proj-b's own quota
    finally:
        api.kill()
