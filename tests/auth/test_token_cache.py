"""The per-worker cache of identities keystonemiddleware confirmed (chute.auth.token_cache):
an entry holds for token_cache_time from its check with Keystone and never past the token's
expiry; a full cache drops expired entries first, then the oldest. Its use behind a real
Keystone (revocation) is in test_keystone.py."""

from __future__ import annotations

import time

from chute.auth.token_cache import Confirmed, TokenCache, key_of

IDENTITY = {"HTTP_X_IDENTITY_STATUS": "Confirmed", "HTTP_X_ROLES": "member"}


def _confirmed(expires_in: float) -> Confirmed:
    return Confirmed(IDENTITY, time.time() + expires_in)


def test_an_entry_holds_for_token_cache_time_from_its_check():
    cache = TokenCache(cache_time=300)
    cache.put(key_of("fresh", None), _confirmed(3600), checked_at=time.time())
    cache.put(key_of("stale", None), _confirmed(3600), checked_at=time.time() - 301)
    assert cache.get(key_of("fresh", None)) is not None
    assert cache.get(key_of("stale", None)) is None


def test_an_entry_never_outlives_its_token():
    cache = TokenCache(cache_time=300)
    cache.put(key_of("expiring", None), _confirmed(0.2), checked_at=time.time())
    found = cache.get(key_of("expiring", None))
    assert found is not None and found.until <= time.time() + 0.2
    time.sleep(0.3)
    assert cache.get(key_of("expiring", None)) is None
    assert len(cache) == 0


def test_a_service_token_is_part_of_the_key():
    cache = TokenCache(cache_time=300)
    cache.put(key_of("user", "service"), _confirmed(3600), checked_at=time.time())
    assert cache.get(key_of("user", "service")) is not None
    assert cache.get(key_of("user", None)) is None
    assert cache.get(key_of("user", "other service")) is None


def test_a_full_cache_drops_expired_entries_then_the_oldest():
    cache = TokenCache(cache_time=300, max_entries=3)
    now = time.time()
    cache.put(key_of("old", None), _confirmed(3600), checked_at=now)
    cache.put(key_of("dying", None), _confirmed(0.1), checked_at=now)
    cache.put(key_of("middle", None), _confirmed(3600), checked_at=now)
    time.sleep(0.2)
    cache.put(key_of("new", None), _confirmed(3600), checked_at=now)
    assert {name for name in ("old", "dying", "middle", "new")
            if cache.get(key_of(name, None))} == {"old", "middle", "new"}
    cache.put(key_of("newest", None), _confirmed(3600), checked_at=now)
    assert cache.get(key_of("old", None)) is None
    assert len(cache) == 3
