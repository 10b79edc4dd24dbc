"""A service's own token from Keystone, for calls it makes as itself (chute-compute to the
image service), with the credentials of its `[keystone_authtoken]` section: the service
user keystonemiddleware already logs in as. keystoneauth keeps the token and fetches a new
one shortly before it expires, so a long-running agent never sends an expired one.

Imported only with auth_strategy = keystone (keystoneauth is keystonemiddleware's).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from chute.errors import RemoteUnavailable


def token_provider(options: dict[str, str]) -> Callable[[], str]:
    """A callable returning a valid token of the user in `options` (keystonemiddleware's
    [keystone_authtoken] values: auth_type, auth_url, username, password, project_name,
    user_domain_id, ...); the callable raises RemoteUnavailable when Keystone fails."""
    from keystoneauth1 import exceptions, loading, session

    loader: Any = loading.get_plugin_loader(options.get("auth_type") or "password")
    known = {opt.dest for opt in loader.get_options()}
    auth = loader.load_from_options(**{k: v for k, v in options.items() if k in known})
    keystone = session.Session(auth=auth)

    def token() -> str:
        """Keystone's failures are the image service's for the caller: unavailable."""
        try:
            value = keystone.get_token()
        except exceptions.ClientException as exc:
            raise RemoteUnavailable(f"no token from Keystone: {exc}") from None
        if not value:
            raise RemoteUnavailable("Keystone issued no token")
        return str(value)

    return token
