"""The `openstack` rows that need an identity service, against a real Keystone 30
(tests.helpers.keystone): openstackclient 10 builds an identity client up front for `keypair`
and `server list`, so under `auth_type: none` they cannot run. Here both services run with
`auth_strategy = keystone`, are in Keystone's catalog, and the client logs in with a password
from a clouds.yaml, as a user of a real cloud does."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from tests.helpers import keystone
from tests.helpers.authed import Pair, start_keystone
from tests.helpers.services import ApiServer, ComputeServer

OPENSTACK = str(Path(sys.executable).parent / "openstack")


@dataclass(frozen=True)
class KeystoneCloud:
    api: ApiServer
    compute: ComputeServer
    root: Path

    def env(self) -> dict[str, str]:
        return {"HOME": str(self.root), "OS_CLIENT_CONFIG_FILE": str(self.root / "clouds.yaml"),
                "PATH": "/usr/bin:/bin", "LC_ALL": "C.UTF-8"}


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KeystoneCloud]:
    ks = keystone.start(tmp_path_factory.mktemp("keystone"))
    pair: Pair | None = None
    try:
        pair = start_keystone(tmp_path_factory, ks)
        password, _ = ks.user("demo", "demo", "member")
        root = tmp_path_factory.mktemp("ks-client")
        (root / "clouds.yaml").write_text(
            "clouds:\n  chute:\n    auth:\n"
            f"      auth_url: {ks.url}\n      username: demo\n      password: {password}\n"
            "      project_name: demo\n      user_domain_id: default\n"
            "      project_domain_id: default\n    region_name: RegionOne\n"
            "    identity_api_version: 3\n")
        (root / "clouds.yaml").chmod(0o600)
        yield KeystoneCloud(pair.api, pair.compute, root)
    finally:
        if pair is not None:
            pair.kill()
        ks.stop()


def openstack(cloud: KeystoneCloud, *args: str) -> str:
    proc = subprocess.run([OPENSTACK, "--os-cloud", "chute", *args], capture_output=True,
                          text=True, env=cloud.env(), timeout=180, check=False,
                          stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, (args, proc.stderr)
    return proc.stdout


def listed(cloud: KeystoneCloud, *args: str) -> list[dict]:
    return json.loads(openstack(cloud, *args, "-f", "json"))


def test_keypair_create_list_delete(cloud, tmp_path):
    public = tmp_path / "key.pub"
    public.write_bytes(ed25519.Ed25519PrivateKey.generate().public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH))
    openstack(cloud, "keypair", "create", "--public-key", str(public), "demo-key")
    assert [k["Name"] for k in listed(cloud, "keypair", "list")] == ["demo-key"]
    openstack(cloud, "keypair", "delete", "demo-key")
    assert listed(cloud, "keypair", "list") == []


def test_server_create_and_list_with_filters(cloud, tmp_path):
    disk = tmp_path / "disk.raw"
    disk.write_bytes(b"\0" * (1 << 20))
    image = json.loads(openstack(cloud, "image", "create", "--disk-format", "raw",
                                 "--container-format", "bare", "--file", str(disk),
                                 "--private", "demo-image", "-f", "json"))
    assert image["owner"]  # the demo project, from the Keystone token
    openstack(cloud, "server", "create", "--image", image["id"], "--flavor", "m1.tiny",
              "--nic", "none", "--wait", "demo-vm")
    openstack(cloud, "server", "create", "--image", image["id"], "--flavor", "m1.tiny",
              "--nic", "none", "--wait", "other-vm")
    assert {s["Name"] for s in listed(cloud, "server", "list")} == {"demo-vm", "other-vm"}
    (only,) = listed(cloud, "server", "list", "--name", "^demo", "--status", "ACTIVE")
    assert only["Name"] == "demo-vm" and only["Status"] == "ACTIVE"
    assert len(listed(cloud, "server", "list", "--limit", "1")) == 1
