"""Logging in to Keystone as the OpenStack clients do, for a token and the service endpoints
of its catalog.

keystoneauth1 is the library the OpenStack clients themselves log in with (and already
chute's, through keystonemiddleware): its plugins take the same option names as clouds.yaml's
`auth:` section (auth_url, username, password, project_name, user_domain_name, ...), run the
version discovery, and pick endpoints from the catalog by service type, interface and region.
It is imported on first use only, so token-only commands start as fast as before.

Each failure becomes one RemoteError whose message says what to fix: wrong credentials,
Keystone unreachable, an option missing, no such endpoint in the catalog.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from chute.errors import RemoteError, RemoteUnavailable

TIMEOUT = 30.0
PASSWORD_PLUGINS = ("password", "v3password", "v2password")


@dataclass(frozen=True)
class Credentials:
    """What a login needs, in clouds.yaml's words."""

    auth_type: str  # a keystoneauth plugin: password, token, v3applicationcredential, ...
    auth: dict[str, str]  # the plugin's options (auth_url, username, password, ...)
    region_name: str | None = None
    interface: str = "public"
    verify: bool | str = True  # False (insecure) or a CA bundle's path

    @property
    def auth_url(self) -> str:
        return self.auth.get("auth_url", "")

    @property
    def who(self) -> str:
        return (self.auth.get("username") or self.auth.get("user_id")
                or self.auth.get("application_credential_name")
                or self.auth.get("application_credential_id") or "the token")


def _option_name(dest: str) -> str:
    return "--os-" + dest.replace("_", "-")


@dataclass
class Login:
    """One Keystone session: authenticated on the first call, then kept for the command."""

    credentials: Credentials
    _session: Any = field(default=None, repr=False)

    def token(self) -> str:
        return str(self._call(lambda session: session.get_token()))

    def endpoint(self, service_type: str) -> str:
        """The catalog's endpoint of `service_type` for the interface and region asked."""
        creds = self.credentials
        found = self._call(lambda session: session.get_endpoint(
            service_type=service_type, interface=creds.interface,
            region_name=creds.region_name))
        if not found:
            region = f", region {creds.region_name}" if creds.region_name else ""
            raise RemoteError(0, f"Keystone's catalog at {creds.auth_url} has no {service_type} "
                                 f"endpoint (interface {creds.interface}{region}): give its "
                                 f"URL with --os-{service_type}-url")
        return str(found)

    def _call(self, what: Any) -> Any:
        from keystoneauth1 import exceptions

        creds = self.credentials
        try:
            return what(self._open())
        except exceptions.EndpointNotFound:
            return None
        except exceptions.Unauthorized:
            raise RemoteError(401, f"Keystone at {creds.auth_url} refused the credentials of "
                                   f"{creds.who}") from None
        except (exceptions.ConnectFailure, exceptions.ConnectTimeout,
                exceptions.DiscoveryFailure, exceptions.SSLError) as exc:
            reason = "TLS failure" if isinstance(exc, exceptions.SSLError) else "no answer"
            raise RemoteUnavailable(f"cannot reach Keystone at {creds.auth_url} ({reason})"
                                    ) from None
        except exceptions.HttpError as exc:
            raise RemoteError(exc.http_status or 0, f"Keystone at {creds.auth_url} answered: "
                                                     f"{exc.message}") from None
        except exceptions.ClientException as exc:
            raise RemoteError(0, f"cannot log in to Keystone at {creds.auth_url}: {exc}"
                              ) from None

    def _open(self) -> Any:
        if self._session is None:
            from keystoneauth1 import exceptions, loading, session

            creds = self.credentials
            if creds.auth_type in PASSWORD_PLUGINS and not creds.auth.get("password"):
                # keystoneauth's generic plugin says it with a bare Exception, at login.
                raise RemoteError(0, f"cannot log in to Keystone at {creds.auth_url} as "
                                     f"{creds.who}: no password (--os-password, OS_PASSWORD)")
            try:
                loader: Any = loading.get_plugin_loader(creds.auth_type)
            except exceptions.NoMatchingPlugin:
                raise RemoteError(0, f"unknown auth type {creds.auth_type!r} "
                                     f"(--os-auth-type)") from None
            known = {opt.dest for opt in loader.get_options()}
            try:
                plugin = loader.load_from_options(
                    **{k: v for k, v in creds.auth.items() if k in known and v})
            except exceptions.MissingRequiredOptions as exc:
                missing = ", ".join(_option_name(opt.dest) for opt in exc.options)
                raise RemoteError(0, f"cannot log in to Keystone ({creds.auth_type}): "
                                     f"missing {missing}") from None
            self._session = session.Session(auth=plugin, verify=creds.verify,
                                            timeout=TIMEOUT)
        return self._session
