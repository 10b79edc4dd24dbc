"""How the `chute` command finds its endpoints and its token, as the OpenStack clients do.

The `--os-*` options and their `OS_*` variables are the openstack client's names. They
override the cloud named by `--os-cloud` / `OS_CLOUD` (read from clouds.yaml where
openstacksdk looks for it: $OS_CLIENT_CONFIG_FILE, ./clouds.yaml,
~/.config/openstack/clouds.yaml, /etc/openstack/clouds.yaml). Then:

- an auth URL (`--os-auth-url` or the cloud's `auth.auth_url`): a Keystone login
  (chute.client.keystone_login): a password by default, a token with `--os-auth-token`
  (`auth_type` token, as `openstack` does with OS_TOKEN); the image and compute endpoints
  come from Keystone's catalog unless given (`--os-image-url`, `--os-compute-url`, the
  cloud's `*_endpoint_override`);
- no auth URL: the token as given (`--os-auth-token`, or an `admin_token` cloud's, which is
  what `chute up` writes in tokens mode), sent to the endpoints given, else to this
  machine's default ports.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from chute.cli.context import CliContext
from chute.client.keystone_login import Credentials, Login

F = TypeVar("F", bound=Callable[..., Any])

# --os-NAME / OS_NAME -> clouds.yaml's `auth:` key NAME (keystoneauth's option names).
AUTH_OPTIONS = ("auth_url", "username", "user_id", "password", "project_name", "project_id",
                "user_domain_name", "user_domain_id", "project_domain_name",
                "project_domain_id")
TOKEN_CLOUDS = ("admin_token", "token_endpoint")  # a fixed token, no Keystone


def _option(name: str, help_text: str, **kwargs: Any) -> Callable[[F], F]:
    env = "OS_" + name.upper()
    return click.option(f"--os-{name.replace('_', '-')}", f"os_{name}", envvar=env,
                        default=None, help=f"{help_text} [env: {env}]", **kwargs)


def login_options(command: F) -> F:
    """The openstack client's authentication options, on the `chute` group."""
    decorators = [
        _option("cloud", "The cloud of clouds.yaml to use."),
        _option("auth_type", "keystoneauth plugin (default: password; token with "
                             "--os-auth-token)."),
        _option("auth_url", "Keystone's URL: log in there and read endpoints from its "
                            "catalog."),
        *[_option(name, f"Keystone {name.replace('_', ' ')}.") for name in AUTH_OPTIONS[1:]],
        _option("default_domain", "The domain of the user and project when not given "
                                  "(default: default)."),
        _option("region_name", "The catalog region of the endpoints."),
        _option("interface", "The catalog interface of the endpoints (default: public)."),
        _option("cacert", "CA bundle verifying Keystone's certificate."),
        click.option("--insecure", "os_insecure", is_flag=True, default=None,
                     envvar="OS_INSECURE",
                     help="Do not verify Keystone's certificate. [env: OS_INSECURE]"),
    ]
    for decorate in reversed(decorators):
        command = decorate(command)
    return command


def config_files() -> list[Path]:
    given = os.environ.get("OS_CLIENT_CONFIG_FILE")
    return [Path(p) for p in ([given] if given else [])] + [
        Path.cwd() / "clouds.yaml", Path.home() / ".config" / "openstack" / "clouds.yaml",
        Path("/etc/openstack/clouds.yaml")]


def read_cloud(name: str) -> dict[str, Any]:
    """Cloud `name` of the first clouds.yaml that has it."""
    import yaml

    for path in config_files():
        if not path.is_file():
            continue
        try:
            clouds = (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("clouds")
        except (OSError, yaml.YAMLError, AttributeError) as exc:
            raise click.ClickException(f"{path}: not a clouds.yaml ({exc})".splitlines()[0]
                                       ) from None
        if isinstance(clouds, dict) and isinstance(clouds.get(name), dict):
            return dict(clouds[name])
    looked = ", ".join(str(p) for p in config_files())
    raise click.ClickException(f"cloud {name!r} (--os-cloud) is in no clouds.yaml: looked in "
                               f"{looked}")


def _verify(cacert: str | None, insecure: bool | None, cloud: dict[str, Any]) -> bool | str:
    if insecure or cloud.get("insecure") or cloud.get("verify") is False:
        return False
    return cacert or cloud.get("cacert") or True


def context_from(options: dict[str, Any], image_url: str | None, compute_url: str | None,
                 token: str | None, fmt: str) -> CliContext:
    """The CliContext of the options given (see the module); nothing is called yet."""
    cloud = read_cloud(options["os_cloud"]) if options.get("os_cloud") else {}
    auth = {k: str(v) for k, v in (cloud.get("auth") or {}).items() if v is not None}
    auth.update({k: options[f"os_{k}"] for k in AUTH_OPTIONS if options.get(f"os_{k}")})
    # The openstack client's --os-default-domain: domains not given are Keystone's default.
    auth.setdefault("default_domain_id", options.get("os_default_domain") or "default")
    auth_type = options.get("os_auth_type") or cloud.get("auth_type") or ""
    image_url = image_url or cloud.get("image_endpoint_override")
    compute_url = compute_url or cloud.get("compute_endpoint_override")
    if auth_type in TOKEN_CLOUDS or not auth.get("auth_url"):
        return CliContext(image_url, compute_url, token or auth.get("token") or None, fmt)
    if token:
        auth["token"] = token
        auth_type = options.get("os_auth_type") or "token"
    credentials = Credentials(auth_type or "password", auth,
                              options.get("os_region_name") or cloud.get("region_name"),
                              options.get("os_interface") or cloud.get("interface") or "public",
                              _verify(options.get("os_cacert"), options.get("os_insecure"),
                                      cloud))
    # keystoneauth warns on stderr while it retries discovery: the CLI says one line.
    logging.getLogger("keystoneauth").setLevel(logging.ERROR)
    return CliContext(image_url, compute_url, None, fmt, login=Login(credentials))
