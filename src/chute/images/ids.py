"""Image ids: one canonical form (lower-case 8-4-4-4-12 hex UUID), decided once at the edge.

Why a rule of our own rather than the schema's `id` pattern (Glance's, kept verbatim in
schema-image.json): that pattern is applied with `re.search`, where `$` also matches before a
final newline, so `"<uuid>\\n"` passed it, was stored, and could then never be read or deleted
(the path lookup refuses ids longer than 36 characters). And Glance compares ids as the
database does (case-insensitive on MySQL, case-sensitive on PostgreSQL and SQLite): two ids
differing only in case were two images here, so a deleted id could be reused by changing its
case (OSSN-0075 is why deleted ids are never reused).

`uuid.UUID()` is not used to check: it also accepts braces, `urn:uuid:` and no hyphens,
forms Glance's schema refuses (400).
"""

from __future__ import annotations

import re

_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def canonical(raw: object) -> str | None:
    """`raw` as the stored id (lower case), or None when it is no UUID in 8-4-4-4-12 form.

    `fullmatch` on the lower-cased string: no trailing newline, no surrounding space, and no
    non-ASCII character that merely lower-cases into a hex digit (there is none today, but the
    check does not depend on Unicode's case tables).
    """
    if not isinstance(raw, str) or len(raw) != 36 or not raw.isascii():
        return None
    lowered = raw.lower()
    return lowered if _UUID.fullmatch(lowered) else None
