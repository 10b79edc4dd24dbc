"""Identity at the HTTP edge: strip what clients claim, authenticate, build the context once.

Two layers, because keystonemiddleware is WSGI middleware:

- `wrap(app, settings)`, a WSGI wrapper: removes every identity header a client sent
  (`X-Roles`, `X-Project-Id`, `X-User-Id`, `X-Identity-Status`, `X-Service-*`, ...; the
  names are keystonemiddleware's) before anything reads them, then, with `keystone`, runs
  keystonemiddleware.auth_token, which validates `X-Auth-Token` and sets those headers
  itself. The version documents stay open to anonymous callers, as in Glance and Nova.
- `ContextMiddleware`, a falcon middleware: builds `req.context.auth`, a `RequestContext`,
  from what the strategy trusts (the tokens file, the headers keystonemiddleware set, or
  noauth's one admin) and answers 401 through the API's own error renderer otherwise.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import Any

import falcon

from chute.auth.context import NOAUTH, RequestContext, with_implied
from chute.auth.options import AuthSettings
from chute.auth.token_cache import DEFAULT_CACHE_TIME, TokenCache, cacheable, key_of
from chute.errors import Unauthenticated

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

# Paths that answer without a token: the version documents clients discover first (Glance's
# `/` and `/versions`; Nova's `/` and `/v2.1`, outside its auth pipeline) and the API
# descriptions. Compared without a trailing slash.
PUBLIC_PATHS = frozenset({"/", "/versions", "/v2.1", "/openapi.json"})


def public(path: str) -> bool:
    return (path.rstrip("/") or "/") in PUBLIC_PATHS

# WSGI names of the headers that carry an identity (keystonemiddleware's list, by prefix,
# and its OpenStack-System-Scope, which it sets but does not remove).
_IDENTITY_PREFIXES = ("HTTP_X_IDENTITY_STATUS", "HTTP_X_SERVICE_", "HTTP_X_USER",
                      "HTTP_X_PROJECT", "HTTP_X_TENANT", "HTTP_X_ROLE", "HTTP_X_DOMAIN",
                      "HTTP_X_IS_ADMIN_PROJECT", "HTTP_X_SYSTEM_SCOPE", "HTTP_X_AUTH_PROJECT",
                      "HTTP_X_TRUST", "HTTP_X_APPLICATION_CREDENTIAL",
                      "HTTP_OPENSTACK_SYSTEM_SCOPE")


def strip_identity(environ: dict[str, Any]) -> None:
    """X-Service-Token stays: it is a credential keystonemiddleware checks (as for Nova
    calling Glance with a user's token and its own), not a claim."""
    for key in [k for k in environ if k.startswith(_IDENTITY_PREFIXES)
                and k != "HTTP_X_SERVICE_TOKEN"]:
        del environ[key]


class _Stripping:
    def __init__(self, app: WSGIApp, authenticating: WSGIApp | None) -> None:
        self.app = app
        self.authenticating = authenticating

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]
                 ) -> Iterable[bytes]:
        strip_identity(environ)
        if self.authenticating is None or public(environ.get("PATH_INFO", "")):
            return self.app(environ, start_response)
        return self.authenticating(environ, start_response)


_CHECK = "chute.token_check"  # environ key: (cache key, when Keystone was asked)


class _Remembering:
    """Between keystonemiddleware and the app: keeps what keystonemiddleware confirmed."""

    def __init__(self, app: WSGIApp, cache: TokenCache) -> None:
        self.app = app
        self.cache = cache

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]
                 ) -> Iterable[bytes]:
        check = environ.pop(_CHECK, None)
        if check is not None:
            confirmed = cacheable(environ, _IDENTITY_PREFIXES)
            if confirmed is not None:
                self.cache.put(check[0], confirmed, check[1])
        return self.app(environ, start_response)


class _CachedKeystone:
    """keystonemiddleware for tokens not in the cache (it checks each with Keystone); the
    identity it confirmed, set again, for tokens in it (see chute.auth.token_cache)."""

    def __init__(self, app: WSGIApp, keystone: WSGIApp, cache: TokenCache,
                 www_authenticate: str) -> None:
        self.app = app
        self.keystone = keystone
        self.cache = cache
        self.challenge = ("WWW-Authenticate", f'Keystone uri="{www_authenticate}"')

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]
                 ) -> Iterable[bytes]:
        token = environ.get("HTTP_X_AUTH_TOKEN")
        if not token:
            return self.keystone(environ, start_response)
        key = key_of(token, environ.get("HTTP_X_SERVICE_TOKEN"))
        confirmed = self.cache.get(key)
        if confirmed is None:
            environ[_CHECK] = (key, time.time())
            return self.keystone(environ, start_response)
        environ.update(confirmed.environ)
        return self.app(environ, self._challenging(start_response))

    def _challenging(self, start_response: Callable[..., Any]) -> Callable[..., Any]:
        """A 401 from the app says where to authenticate, as keystonemiddleware's do."""
        def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            if status.startswith("401"):
                headers = [*headers, self.challenge]
            return start_response(status, headers, exc_info)
        return start


def _keystone(app: WSGIApp, options: dict[str, str]) -> WSGIApp:
    from keystonemiddleware import auth_token

    cache_time = int(options.get("token_cache_time") or DEFAULT_CACHE_TIME)
    if cache_time < 0 or options.get("memcached_servers") or options.get("cache"):
        plain: WSGIApp = auth_token.AuthProtocol(app, dict(options))
        return plain
    cache = TokenCache(cache_time)
    keystone: WSGIApp = auth_token.AuthProtocol(_Remembering(app, cache),
                                                {**options, "token_cache_time": "-1"})
    return _CachedKeystone(app, keystone, cache, options["www_authenticate_uri"])


def wrap(app: WSGIApp, settings: AuthSettings) -> WSGIApp:
    """`app` behind the header stripping (and keystonemiddleware with `keystone`, its
    confirmed tokens cached: chute.auth.token_cache)."""
    authenticating = None
    if settings.strategy == "keystone":
        authenticating = _keystone(app, settings.keystone)
    return _Stripping(app, authenticating)


def _from_keystone(req: falcon.Request) -> RequestContext | None:
    if req.get_header("X-Identity-Status") != "Confirmed":
        return None
    roles = (req.get_header("X-Roles") or "").split(",")
    # An unscoped token has no project: None, never "" (a policy target's empty owner).
    return RequestContext(req.get_header("X-User-Id") or None,
                          req.get_header("X-Project-Id") or None,
                          with_implied(roles), auth_token=req.get_header("X-Auth-Token"))


def authenticator(settings: AuthSettings) -> Callable[[falcon.Request], RequestContext | None]:
    """The strategy's way from a request to a context (None: not authenticated)."""
    if settings.strategy == "noauth":
        return lambda req: replace(NOAUTH, auth_token=req.get_header("X-Auth-Token"))
    if settings.strategy == "keystone":
        return _from_keystone
    table = settings.tokens
    assert table is not None  # AuthSettings.from_config loads it for `tokens`
    return lambda req: table.identify(req.get_header("X-Auth-Token"))


class ContextMiddleware:
    def __init__(self, settings: AuthSettings) -> None:
        self.identify = authenticator(settings)

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        if public(req.path):
            req.context.auth = None
            return
        ctx = self.identify(req)
        if ctx is None:
            raise Unauthenticated("The request you have made requires authentication.")
        req.context.auth = ctx


def context_of(req: falcon.Request) -> RequestContext:
    """The caller of a request that passed ContextMiddleware (never anyone by default)."""
    ctx = getattr(req.context, "auth", None)
    if not isinstance(ctx, RequestContext):
        raise Unauthenticated("The request you have made requires authentication.")
    return ctx
