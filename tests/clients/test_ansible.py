"""Ansible's openstack.cloud collection (image, keypair, server with auto_ip false,
server_action stop) on the README's clouds.yaml, run twice: the second run changes nothing.

The collection runs in its own virtualenv (.cache/ansible-venv), made here from the pins of
pyproject's `ansible-tests` extra: openstack.cloud 2.5.0 (bundled in ansible 12.3.0, the last
`ansible` for Python 3.11) reads `openstack.version`, which openstacksdk imports only up to
4.14.0, while openstackclient 10.5 in the test venv needs openstacksdk >= 4.21."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

REPO = Path(__file__).resolve().parents[2]
VENV = REPO / ".cache" / "ansible-venv"
PLAYBOOK = Path(__file__).with_name("playbook.yml")


def pins() -> list[str]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    return list(project["optional-dependencies"]["ansible-tests"])


@pytest.fixture(scope="module")
def ansible_venv() -> Path:
    """Made once per pin set (a stamp records the pins); later runs reuse it."""
    stamp = VENV / "pins.json"
    wanted = pins()
    if not stamp.exists() or json.loads(stamp.read_text()) != wanted:
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(VENV)], check=True)
        subprocess.run([str(VENV / "bin" / "pip"), "install", "-q", *wanted], check=True,
                       timeout=1200)
        stamp.write_text(json.dumps(wanted))
    return VENV


def run_playbook(cloud, venv: Path, disk: Path, public_key: str) -> str:
    env = {**cloud.env(), "ANSIBLE_NOCOLOR": "1", "ANSIBLE_LOCAL_TEMP": str(cloud.root / "at"),
           "ANSIBLE_HOME": str(cloud.root / "ansible"), "ANSIBLE_PYTHON_INTERPRETER":
           str(venv / "bin" / "python"), "ANSIBLE_LOCALHOST_WARNING": "false",
           "ANSIBLE_INVENTORY_UNPARSED_WARNING": "false"}
    extra = json.dumps({"disk": str(disk), "public_key": public_key})
    proc = subprocess.run([str(venv / "bin" / "ansible-playbook"), "-i", "localhost,",
                           "-e", extra, str(PLAYBOOK)], capture_output=True, text=True,
                          env=env, timeout=600, check=False, cwd=cloud.root)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def recap(output: str) -> dict[str, int]:
    line = next(row for row in output.splitlines() if row.startswith("localhost"))
    return {key: int(value) for key, value in re.findall(r"(\w+)=(\d+)", line)}


def test_the_playbook_converges_and_a_second_run_changes_nothing(cloud, ansible_venv,
                                                                  tmp_path):
    disk = tmp_path / "disk.raw"
    disk.write_bytes(os.urandom(1 << 20))
    public_key = ed25519.Ed25519PrivateKey.generate().public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()
    first = recap(run_playbook(cloud, ansible_venv, disk, public_key))
    assert first["changed"] == 5 and first["failed"] == 0, first
    second = recap(run_playbook(cloud, ansible_venv, disk, public_key))
    assert second["changed"] == 0 and second["failed"] == 0 and second["ok"] == 8, second
    (imported,) = requests.get(cloud.api.url + "/v2/images", params={"name": "ansible-imported"},
                               timeout=10).json()["images"]
    assert imported["status"] == "active"
    assert f"image {imported['id']}: uploading -> importing -> active (glance-direct" in \
        cloud.api.log_path.read_text()
    servers = cloud.compute.url + "/v2.1/servers/detail"
    (server,) = requests.get(servers, timeout=10).json()["servers"]
    assert (server["name"], server["key_name"], server["metadata"]) == (
        "ansible-vm", "ansible-key", {"role": "test"})
