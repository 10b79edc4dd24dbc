"""The identity files `chute up` writes into its data dir, once, beside the configs:

- `tokens` (0600): the tokens file both services read (auth_strategy = tokens): an `admin`
  user in project `admin`, and the compute host's service identity (`chute-compute` in
  project `service`, role `service`), whose token is the kept `service-token`;
- `clouds.yaml` (0600): cloud `chute` for openstacksdk and the `openstack` CLI (the admin
  token, each service's endpoint given: there is no Keystone catalog to read them from);
- `openrc` (0600): `. openrc` sets what `chute`, `glance` and `openstack` read (OS_AUTH_TOKEN,
  OS_TOKEN, OS_IMAGE_URL, OS_COMPUTE_URL, OS_CLOUD, OS_CLIENT_CONFIG_FILE).

Kept as they are on later starts, as the configs are: an operator's added tokens survive.

With `chute up --keystone` (write_keystone_identity) there is no tokens file: `clouds.yaml`
holds clouds `chute` (Keystone's admin) and `chute-demo` (the demo project's member), and
`openrc` / `demo-openrc` set OS_AUTH_URL, OS_USERNAME, OS_PASSWORD and the project, as
DevStack's do: `glance`, `nova` and `openstack` log in with a password and find chute's
endpoints in Keystone's catalog.
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


def _password_cloud(name: str, auth_url: str, user: str, password: str, project: str) -> str:
    return f"""\
  {name}:
    auth_type: password
    auth:
      auth_url: {auth_url}
      username: {user}
      password: {password}
      project_name: {project}
      user_domain_name: Default
      project_domain_name: Default
    region_name: RegionOne
    identity_api_version: '3'
    image_api_version: '2'
"""


def _password_openrc(auth_url: str, user: str, password: str, project: str) -> str:
    return f"""\
# . this file: glance, nova and openstack then log in to Keystone as {user} ({project})
export OS_AUTH_URL={auth_url}
export OS_USERNAME={user}
export OS_PASSWORD={password}
export OS_PROJECT_NAME={project}
export OS_USER_DOMAIN_NAME=Default
export OS_PROJECT_DOMAIN_NAME=Default
export OS_IDENTITY_API_VERSION=3
export OS_IMAGE_API_VERSION=2
export OS_REGION_NAME=RegionOne
"""


def write_keystone_identity(root: Path, auth_url: str,
                            users: dict[str, tuple[str, str, str]]) -> None:
    """clouds.yaml and an openrc per user (`admin` -> openrc, NAME -> NAME-openrc); `users`
    maps a name to (user, password, project)."""
    clouds = "".join(_password_cloud(CLOUD if name == "admin" else f"{CLOUD}-{name}",
                                     auth_url, *found) for name, found in users.items())
    _write_once(root / "clouds.yaml", "# Written by chute up --keystone for openstacksdk and "
                f"the openstack CLI: OS_CLOUD={CLOUD}\nclouds:\n{clouds}")
    for name, found in users.items():
        rc = root / ("openrc" if name == "admin" else f"{name}-openrc")
        _write_once(rc, _password_openrc(auth_url, *found))
