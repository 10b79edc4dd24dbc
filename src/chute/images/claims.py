"""Upload claims: which API node is writing an image's data, so a dead node's upload can be taken
over and a live one never is.

On PostgreSQL (several API nodes, one database, one store) the claim is a session-level
advisory lock keyed by the image id, held on its own connection from before `queued -> saving`
until the database has the upload's outcome and the temporary file is gone. PostgreSQL drops a
session's locks when the session ends, and a session ends when its client process dies: the
kernel closes a SIGKILLed node's sockets at once, and a host that vanishes is noticed by TCP
keepalives (chute.images.db.KEEPALIVE, about 30 s). So "the lock is free" means exactly "no
live process is writing this image", with no clock, lease length or renewal involved: a slow
upload, a stalled client or a paused node keeps its claim for as long as it lives.

SQLite is one node: an image in `saving` there is either being written by this node or was
left by a crash, which start-up recovery handles (chute.images.main); claims always succeed
and nothing is taken over while the service runs.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine, func, select


def lock_key(image_id: str) -> int:
    """The advisory lock's 64-bit key for `image_id` (a hash: ids are not numbers)."""
    digest = hashlib.blake2b(f"chute-upload:{image_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


class UploadClaims:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @property
    def shared(self) -> bool:
        """Do other nodes write to this database (so that a claim means anything)?"""
        return self.engine.dialect.name == "postgresql"

    @contextmanager
    def hold(self, image_id: str) -> Iterator[bool]:
        """Claim the upload of `image_id` for the block; yields False when another live
        process holds it (never waits: the caller answers 409). Released at the block's end;
        a connection whose unlock failed is discarded rather than pooled with the lock."""
        if not self.shared:
            yield True
            return
        key = lock_key(image_id)
        with self.engine.connect() as conn:
            conn = conn.execution_options(isolation_level="AUTOCOMMIT")
            held = bool(conn.execute(select(func.pg_try_advisory_lock(key))).scalar_one())
            try:
                yield held
            finally:
                if held:
                    try:
                        conn.execute(select(func.pg_advisory_unlock(key)))
                    except Exception:
                        conn.invalidate()
                        raise
