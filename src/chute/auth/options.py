"""The auth options both services declare, with Glance's and Nova's names.

`[DEFAULT] auth_strategy` is Glance's and Nova's option; `[oslo_policy] policy_file` is
oslo.policy's; `[keystone_authtoken]` holds keystonemiddleware's own options, the ones a
chute site needs (the loader refuses the others by name, as for every section), handed to
keystonemiddleware as they are. chute's loader stays the one loader: see chute.auth.policy
for how oslo.policy is fed.

Kept light: the gunicorn masters import this module.
"""

from __future__ import annotations

import ipaddress
import logging
from dataclasses import dataclass

from chute.auth.tokens import TokensFileError, TokenTable
from chute.auth.tokens import load as load_tokens
from chute.config import Config, Opt

LOG = logging.getLogger(__name__)

STRATEGIES = ("noauth", "tokens", "keystone")

OPTIONS = [
    Opt("auth_strategy", "str", "",
        "Who may call: keystone (keystonemiddleware.auth_token, [keystone_authtoken]), "
        "tokens (the static tokens of tokens_file), noauth (everyone is an admin: "
        "development only). Empty: noauth when bind_host is a loopback address, refused "
        "otherwise.", choices=("", *STRATEGIES)),
    Opt("tokens_file", "str", "",
        "With auth_strategy = tokens: the file of `TOKEN USER_ID PROJECT_ID ROLES` lines "
        "(mode 0600: refused if group or others may read it)."),
]

POLICY_SECTION = "oslo_policy"
POLICY_OPTIONS = [
    Opt("policy_file", "str", "",
        "A YAML (or JSON) file of policy rules overriding the defaults (Glance's and Nova's "
        "secure-RBAC rules: admin, project member, project reader)."),
]

KEYSTONE_SECTION = "keystone_authtoken"
# keystonemiddleware's options a site sets (its [keystone_authtoken] names), all as text:
# keystonemiddleware converts and checks them itself when the service starts.
KEYSTONE_OPTIONS = [Opt(name, "str", "", f"keystonemiddleware's {name}.") for name in (
    "www_authenticate_uri", "auth_url", "auth_type", "username", "password", "project_name",
    "user_domain_name", "project_domain_name", "user_domain_id", "project_domain_id",
    "region_name", "interface", "service_type", "memcached_servers", "token_cache_time",
    "cafile", "certfile", "keyfile", "insecure", "http_connect_timeout",
    "service_token_roles", "service_token_roles_required", "delay_auth_decision",
    "include_service_catalog", "cache")]

SECTIONS: dict[str, list[Opt]] = {POLICY_SECTION: POLICY_OPTIONS,
                                  KEYSTONE_SECTION: KEYSTONE_OPTIONS}


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class AuthSettings:
    """How a service authenticates callers and which policy file overrides the defaults."""

    strategy: str
    tokens: TokenTable | None
    policy_file: str
    keystone: dict[str, str]  # [keystone_authtoken], the options set

    @classmethod
    def from_config(cls, conf: Config, bind_host: str) -> AuthSettings:
        """Raises ConfigError naming the option: an implicit open door on a network address,
        tokens without a usable file, keystone without auth_url."""
        d = conf.typed("DEFAULT")
        strategy = d.string("auth_strategy")
        if not strategy:
            if not _loopback(bind_host):
                raise conf.fail("DEFAULT", "auth_strategy",
                                f"is not set and bind_host {bind_host} is not a loopback "
                                f"address: choose keystone or tokens (or noauth, which lets "
                                f"anyone who reaches the port do anything)")
            strategy = "noauth"
        tokens = None
        if strategy == "tokens":
            path = d.string("tokens_file")
            if not path:
                raise conf.fail("DEFAULT", "tokens_file", "is needed by auth_strategy = tokens")
            try:
                tokens = load_tokens(path)
            except TokensFileError as exc:
                raise conf.fail("DEFAULT", "tokens_file", str(exc)) from None
        keystone = {k: v for k, v in conf.section(KEYSTONE_SECTION).items() if v}
        # keystonemiddleware answers a 401 with `WWW-Authenticate: Keystone uri=...`: without
        # www_authenticate_uri it asks its auth plugin, and fails (500) when there is none.
        for needed in ("www_authenticate_uri", "auth_url"):
            if strategy == "keystone" and not keystone.get(needed):
                raise conf.fail(KEYSTONE_SECTION, needed, "is needed by auth_strategy = "
                                                          "keystone")
        cache_time = keystone.get("token_cache_time", "300")
        if not cache_time.lstrip("-").isdigit() or int(cache_time) < -1:
            raise conf.fail(KEYSTONE_SECTION, "token_cache_time",
                            f"{cache_time!r} is not a number of seconds (or -1: no cache)")
        return cls(strategy, tokens, conf.typed(POLICY_SECTION).string("policy_file"), keystone)

    def check_policy(self, conf: Config) -> None:
        """A policy file that cannot be used stops the service naming the option, at start
        rather than in each worker; oslo.policy is imported only when a file is set."""
        if self.policy_file:
            from chute.auth.policy import check_policy_file

            problem = check_policy_file(self.policy_file)
            if problem is not None:
                raise conf.fail(POLICY_SECTION, "policy_file", problem)

    def log_start(self, service: str) -> None:
        """Say at start how callers are checked; noauth says it is for development only."""
        if self.strategy == "noauth":
            LOG.warning("%s: auth_strategy = noauth: every caller is an admin. For development "
                        "only: set auth_strategy = tokens or keystone anywhere else.", service)
        elif self.tokens is not None:
            LOG.info("%s: auth_strategy = tokens (%d tokens from %s)", service,
                     len(self.tokens.entries), self.tokens.path)
        else:
            LOG.info("%s: auth_strategy = %s", service, self.strategy)


# An app built without a config (the OpenAPI test's route listing): noauth, no policy file.
NOAUTH_SETTINGS = AuthSettings("noauth", None, "", {})
