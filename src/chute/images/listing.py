"""`GET /v2/images` query parameters -> a db.ListQuery, plus the `first`/`next` links.

Messages and rules follow Glance's v2 images controller and its request deserializer.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from urllib.parse import urlencode

from chute.errors import Invalid
from chute.images import ids
from chute.images.db import ImageRecord, ListQuery
from chute.images.options import ServiceSettings

SORT_KEYS = ("name", "status", "container_format", "disk_format", "size", "id", "created_at",
             "updated_at")
IN_FILTERS = ("name", "id", "status", "container_format", "disk_format")
COLUMN_EQUAL = {"checksum": str, "os_hash_algo": str, "os_hash_value": str, "owner": str,
                "min_ram": int, "min_disk": int}
NOT_FILTERS = {"limit", "marker", "sort_key", "sort_dir", "sort", "member_status", "visibility"}


def _in_values(raw: str) -> list[str]:
    """`in:a,"b, c"` -> ['a', 'b, c']; a bare value or `eq:` value is one item."""
    if raw.startswith("eq:"):
        return [raw[3:]]
    if not raw.startswith("in:"):
        if re.match(r"^[a-z]+:", raw) and raw.split(":", 1)[0] in ("neq", "gt", "gte", "lt",
                                                                   "lte"):
            raise Invalid(f"Unable to filter by unknown operator '{raw.split(':', 1)[0]}'.")
        return [raw]
    body = raw[3:]
    values = re.findall(r'\s*("(?:[^"\\]|\\.)*"|[^,]*)\s*(?:,|$)', body)
    out = [v[1:-1] if v.startswith('"') and v.endswith('"') else v for v in values]
    return [v for v in out if v != ""] or [""]


def _bool(raw: str, name: str, strict: bool) -> bool:
    value = raw if strict else raw.lower()
    if value == "true":
        return True
    if value == "false":
        return False
    raise Invalid(f"Invalid value '{raw}' for parameter '{name}': must be true or false.")


def _time(raw: str) -> tuple[str, datetime]:
    op, sep, value = raw.partition(":")
    if op not in ("gt", "gte", "lt", "lte", "eq", "neq") or not sep:
        op, value = "eq", raw
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise Invalid(f"Invalid time format for {raw}.") from None
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(timezone.utc).replace(tzinfo=None)
    return op, parsed


def _sort(pairs: list[tuple[str, str]]) -> list[tuple[str, str]]:
    keys = [v for k, v in pairs if k == "sort_key"]
    dirs = [v for k, v in pairs if k == "sort_dir"]
    combined = [v for k, v in pairs if k == "sort"]
    if combined and (keys or dirs):
        raise Invalid("The 'sort' argument is not supported with the 'sort_key' or "
                      "'sort_dir' arguments.")
    result: list[tuple[str, str]] = []
    if combined:
        for item in ",".join(combined).split(","):
            key, _, direction = item.strip().partition(":")
            result.append((key.strip(), direction.strip() or "desc"))
    else:
        if len(dirs) > 1 and len(dirs) != len(keys):
            raise Invalid("Number of sort dirs does not match the number of sort keys")
        for index, key in enumerate(keys):
            direction = dirs[index] if len(dirs) > 1 else (dirs[0] if dirs else "desc")
            result.append((key, direction))
        if not keys and dirs:
            result = [("created_at", dirs[0])]
    seen: set[str] = set()
    for key, direction in result:
        if key not in SORT_KEYS:
            raise Invalid(f"Invalid sort key: {key}. It must be one of the following: "
                          f"{', '.join(SORT_KEYS)}.")
        if key in seen:
            # Refused rather than dropped: a repeated key changes nothing in the order, and
            # without this `sort=id,id,...` (700 bytes) built a keyset clause that burnt
            # minutes of CPU. With it there are at most len(SORT_KEYS) keys.
            raise Invalid(f"Sort key {key} is given more than once: each of the "
                          f"{len(SORT_KEYS)} sort keys may appear once.")
        seen.add(key)
        if direction not in ("asc", "desc"):
            raise Invalid(f"Invalid sort direction: {direction}")
    if not result:
        result = [("created_at", "desc")]
    first_dir = result[0][1]
    present = {key for key, _ in result}
    for tie in ("created_at", "id"):
        if tie not in present:
            result.append((tie, first_dir))
    return result


def _limit(pairs: dict[str, str], default: int, maximum: int) -> int:
    if "limit" not in pairs:
        return default
    try:
        limit = int(pairs["limit"])
    except ValueError:
        raise Invalid("limit param must be an integer") from None
    if limit < 0:
        raise Invalid("limit param must be positive")
    return min(limit, maximum)


def _check_counts(pairs: list[tuple[str, str]], settings: ServiceSettings) -> None:
    """Refuse what multiplies the work of a list before any of it is parsed (issue 18)."""
    filters = [(key, raw) for key, raw in pairs if key not in NOT_FILTERS and key != "os_hidden"]
    if len(filters) > settings.filters_max:
        raise Invalid(f"Too many filters: {len(filters)} > {settings.filters_max} "
                      f"(list_filters_max).")
    for key, raw in filters:
        # A cheap upper bound first (commas), the exact count after parsing (_in_values).
        if key in IN_FILTERS and raw.startswith("in:") and raw.count(",") >= (
                settings.in_values_max):
            count = len(_in_values(raw))
            if count > settings.in_values_max:
                raise Invalid(f"Too many values in the '{key}' filter: {count} > "
                              f"{settings.in_values_max} (list_in_values_max).")


def _marker(raw: str | None) -> str | None:
    """The marker in the stored id form; a marker that is no id cannot be found (400)."""
    if raw is None:
        return None
    marker = ids.canonical(raw)
    if marker is None:
        raise Invalid(f"marker [{raw}] not found")
    return marker


def parse(pairs: list[tuple[str, str]], settings: ServiceSettings) -> ListQuery:
    """Build the query; unknown keys are custom-property filters, as in Glance."""
    last = dict(pairs)
    if "changes-since" in last:
        raise Invalid('The "changes-since" filter is no longer available on v2.')
    _check_counts(pairs, settings)
    q = ListQuery(sort=_sort(pairs),
                  limit=_limit(last, settings.default_limit, settings.max_limit),
                  marker=_marker(last.get("marker")))
    visibility = last.get("visibility")
    if visibility is not None:
        if visibility not in ("public", "private", "shared", "community", "all"):
            raise Invalid(f"Invalid visibility value: {visibility}")
        if visibility != "all":
            q.equal.append(("visibility", [visibility]))
    member_status = last.get("member_status", "accepted")
    if member_status not in ("pending", "accepted", "rejected", "all"):
        raise Invalid(f"Invalid status value: {member_status}")
    q.equal.append(("os_hidden", [_bool(last.get("os_hidden", "false"), "os_hidden", False)]))
    for key, raw in pairs:
        if key in NOT_FILTERS or key == "os_hidden":
            continue
        if key == "id":  # stored lower-case (chute.images.ids); no other form matches
            q.equal.append((key, [ids.canonical(v) or v for v in _in_values(raw)]))
        elif key in IN_FILTERS:
            q.equal.append((key, _in_values(raw)))
        elif key == "protected":
            q.equal.append(("protected", [_bool(raw, "protected", True)]))
        elif key == "tag":
            if raw not in q.tags:
                q.tags.append(raw)
        elif key in ("size_min", "size_max"):
            try:
                setattr(q, key, int(raw))
            except ValueError:
                raise Invalid("Unable to filter on a range with a non-numeric value.") from None
        elif key in ("created_at", "updated_at"):
            op, when = _time(raw)
            q.times.append((key, op, when))
        elif key in COLUMN_EQUAL:
            try:
                q.equal.append((key, [COLUMN_EQUAL[key](raw)]))
            except ValueError:
                raise Invalid(f"Invalid value '{raw}' for filter {key}") from None
        else:
            q.properties[key] = raw
    return q


def links(pairs: list[tuple[str, str]], page: list[ImageRecord], limit: int) -> dict[str, str]:
    """Glance rebuilds links from dict(params): repeated keys collapse to their last value."""
    params: dict[str, str] = {}
    for key, value in pairs:
        params[key] = value
    params.pop("marker", None)
    first = "/v2/images" + (f"?{urlencode(params)}" if params else "")
    out = {"first": first, "schema": "/v2/schemas/images"}
    if page and len(page) == limit:
        out["next"] = "/v2/images?" + urlencode({**params, "marker": page[-1].id})
    return out
