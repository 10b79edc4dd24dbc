"""The identity files `chute up` writes into its data dir, once, beside the configs:

- `tokens` (0600): the tokens file both services read (auth_strategy = tokens): an `admin`
  user in project `admin`, and the compute host's service identity (`chute-compute` in
  project `service`, role `service`), whose token is the kept `service-token`;
- `clouds.yaml` (0600): cloud `chute` for openstacksdk and the `openstack` CLI (the admin
  token, each service's endpoint given: there is no Keystone catalog to read them from);
- `openrc` (0600): `. openrc` sets what `chute`, `glance` and `openstack` read (OS_AUTH_TOKEN,
  OS_TOKEN, OS_IMAGE_URL, OS_COMPUTE_URL, OS_CLOUD, OS_CLIENT_CONFIG_FILE).

Kept as they are on later starts, as the configs are: an operator's added tokens survive.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

SECRET = 0o600
CLOUD = "chute"


@dataclass(frozen=True)
class Identity:
    """Where the identity files are, and the admin token they hold."""

    tokens_file: Path
    clouds_yaml: Path
    openrc: Path
    admin_token: str


def _write_once(path: Path, text: str) -> None:
    if path.exists():
        os.chmod(path, path.stat().st_mode & SECRET & 0o777)
        return
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, SECRET)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)


def _admin_token(tokens_file: Path) -> str:
    """The kept admin token: the first entry of the kept file whose roles include admin."""
    for line in tokens_file.read_text(encoding="utf-8").splitlines():
        fields = line.split("#", 1)[0].split()
        if len(fields) == 4 and "admin" in fields[3].split(","):
            return fields[0]
    return ""


def write_identity(root: Path, image_url: str, compute_url: str,
                   service_token: str) -> Identity:
    ident = Identity(root / "tokens", root / "clouds.yaml", root / "openrc", "")
    _write_once(ident.tokens_file, f"""\
# chute tokens file (auth_strategy = tokens): TOKEN USER_ID PROJECT_ID ROLES
# admin implies member implies reader. Add a line per user; both services read this file
# at start (restart them after an edit). Keep it 0600.
{secrets.token_hex(16)} admin admin admin
{service_token} chute-compute service service
""")
    admin = _admin_token(ident.tokens_file)
    _write_once(ident.clouds_yaml, f"""\
# Written by chute up for openstacksdk and the openstack CLI: OS_CLOUD={CLOUD}
clouds:
  {CLOUD}:
    auth_type: admin_token
    auth:
      endpoint: {image_url}
      token: {admin}
    image_endpoint_override: {image_url}
    compute_endpoint_override: {compute_url}/v2.1
    image_api_version: '2'
""")
    _write_once(ident.openrc, f"""\
# . this file: chute, glance and openstack then reach this chute up as its admin
export OS_AUTH_TOKEN={admin}
export OS_TOKEN={admin}
export OS_IMAGE_URL={image_url}
export OS_COMPUTE_URL={compute_url}
export OS_CLOUD={CLOUD}
export OS_CLIENT_CONFIG_FILE={ident.clouds_yaml}
""")
    return Identity(ident.tokens_file, ident.clouds_yaml, ident.openrc, admin)
