"""The identities keystonemiddleware confirmed, kept per worker so a known token costs a
dictionary lookup instead of keystonemiddleware's per-request work.

Why: with its in-process cache warm, keystonemiddleware still spends about 0.11 ms of CPU on
every request (webob header removal and copying, JSON decoding of the cached token, date
parsing): 29-35% of an image-show's requests/s. This cache stores what keystonemiddleware
put into the WSGI environ for a confirmed token (its identity headers, `keystone.token_info`,
`keystone.token_auth`) and sets it again on the next request with the same token.

It replaces keystonemiddleware's own in-process cache, with its meaning kept: a token checked
with Keystone is trusted for `token_cache_time` seconds (keystonemiddleware's option and
default, 300; -1 turns caching off), never past its expiry; a token revoked in Keystone is
refused once that time is up, as with keystonemiddleware. keystonemiddleware is then run with
its cache off, so every miss here is a check with Keystone, and an entry can never outlive the
check it comes from. When a site shares a cache through memcached (`memcached_servers`,
`cache`), keystonemiddleware keeps it and this cache is not used: entries made by another
worker or node are not this worker's to extend.

Not kept (keystonemiddleware checks them on every request): tokens refused, tokens with a
`bind`, and application credentials with access rules (allowed per method and path).
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

DEFAULT_CACHE_TIME = 300  # keystonemiddleware's token_cache_time default
MAX_ENTRIES = 4096  # per worker; the oldest goes first (its token is then checked again)



def key_of(user_token: str, service_token: str | None) -> bytes:
    """The tokens themselves are never kept: the key is a hash of both."""
    return hashlib.sha256(f"{user_token}\n{service_token or ''}".encode()).digest()


@dataclass(frozen=True)
class Confirmed:
    """What keystonemiddleware set in the environ for a token, and until when it holds."""

    environ: Mapping[str, Any]
    until: float  # time.time()


def cacheable(environ: Mapping[str, Any], identity: tuple[str, ...]) -> Confirmed | None:
    """The identity keystonemiddleware confirmed in `environ`, if it may be kept: the user
    token (and a service token, if sent) confirmed, no bind, no access rules. Kept: the
    environ keys starting with `identity` (the identity headers, which clients cannot send:
    they are stripped before keystonemiddleware runs, so these are all its own) and its
    `keystone.*` objects; never another header of the request. `until` is the earliest
    expiry of the tokens; the caller bounds it by token_cache_time."""
    if environ.get("HTTP_X_IDENTITY_STATUS") != "Confirmed":
        return None
    if environ.get("HTTP_X_SERVICE_TOKEN") is not None and \
            environ.get("HTTP_X_SERVICE_IDENTITY_STATUS") != "Confirmed":
        return None
    token = (environ.get("keystone.token_info") or {}).get("token") or {}
    if "bind" in token or "access_rules" in (token.get("application_credential") or {}):
        return None
    plugin = environ.get("keystone.token_auth")
    refs = [getattr(plugin, "user", None), getattr(plugin, "service", None)]
    expiries = [ref.expires.timestamp() for ref in refs if ref is not None]
    if not expiries:
        return None
    # The client's own X-Service-Token (an X-Service-* name) stays the request's.
    kept = {k: v for k, v in environ.items()
            if (k.startswith(identity) and k != "HTTP_X_SERVICE_TOKEN")
            or k in ("keystone.token_info", "keystone.token_auth")}
    return Confirmed(kept, min(expiries))


class TokenCache:
    """Confirmed identities by token hash, each until min(its expiry, checked + cache_time).

    Reads take no lock (a dict lookup is atomic); writes and evictions do."""

    def __init__(self, cache_time: int, max_entries: int = MAX_ENTRIES) -> None:
        self.cache_time = cache_time
        self.max_entries = max_entries
        self._entries: dict[bytes, Confirmed] = {}
        self._lock = threading.Lock()

    def get(self, key: bytes) -> Confirmed | None:
        found = self._entries.get(key)
        if found is None:
            return None
        if time.time() >= found.until:
            with self._lock:
                if self._entries.get(key) is found:
                    del self._entries[key]
            return None
        return found

    def put(self, key: bytes, confirmed: Confirmed, checked_at: float) -> None:
        """Keep `confirmed` from a check with Keystone made at `checked_at`."""
        until = min(confirmed.until, checked_at + self.cache_time)
        if until <= time.time():
            return
        with self._lock:
            if key not in self._entries and len(self._entries) >= self.max_entries:
                self._evict()
            self._entries[key] = Confirmed(confirmed.environ, until)

    def _evict(self) -> None:
        now = time.time()
        for key in [k for k, v in self._entries.items() if v.until <= now]:
            del self._entries[key]
        while len(self._entries) >= self.max_entries:
            del self._entries[next(iter(self._entries))]

    def __len__(self) -> int:
        return len(self._entries)
