"""`GET /servers[/detail]` query parameters as Nova reads them: filters, sorting, paging.

Filters: `name` (a regular expression, searched as Nova's database REGEXP does), `status`
(several allowed; an unknown status matches nothing, as in Nova), `image`, `flavor`,
`changes-since` / `changes-before` (2.66), `tags`, `tags-any`, `not-tags`, `not-tags-any`
(2.26), `key_name`, `availability_zone`, `description` (2.19), `uuid`, `vm_state`,
`config_drive`, `ip`/`ip6` (chute gives servers no addresses: they match nothing).
Sorting: `sort_key`/`sort_dir` pairs (default `created_at desc`, then id). Paging: `limit`
(capped at Nova's `[api] max_limit` 1000) and `marker`, with a `next` link when a page is full.
From 2.75 an unknown parameter is a 400, before it is ignored (Nova's schema change).
A per-host agent holds few enough servers that filtering the list in Python is the simple
and sufficient way.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import regex

from chute.compute.instance import STATUS_BY_VM_STATE, Instance
from chute.compute.microversion import APIVersion
from chute.errors import BadComputeRequest

MAX_LIMIT = 1000
# The time one list may spend matching its `name` pattern: a pattern with catastrophic
# backtracking (`(a|aa)+$`) is stopped and refused instead of holding an API thread, which
# Python's `re` cannot do (the `regex` library takes a timeout).
NAME_MATCH_SECONDS = 1.0
_SORT_KEYS: dict[str, Callable[[Instance], Any]] = {
    "created_at": lambda i: i.created, "updated_at": lambda i: i.updated,
    "display_name": lambda i: i.name, "uuid": lambda i: i.id,
    "vm_state": lambda i: i.vm_state, "task_state": lambda i: i.task_state or "",
    "power_state": lambda i: i.power_state, "image_ref": lambda i: i.image_id,
    "instance_type_id": lambda i: i.flavor_id, "launched_at": lambda i: i.launched_at
    or datetime.min.replace(tzinfo=UTC), "availability_zone": lambda i: i.availability_zone
    or "", "key_name": lambda i: i.key_name or "", "display_description": lambda i:
    i.description or "",
}
_FILTERS = {"name", "status", "image", "flavor", "changes-since", "changes-before", "tags",
            "tags-any", "not-tags", "not-tags-any", "key_name", "availability_zone",
            "description", "uuid", "vm_state", "config_drive", "ip", "ip6"}
# Accepted and without effect here: one project, no deleted rows kept, no admin-only views.
_NEUTRAL = {"all_tenants", "deleted", "project_id", "tenant_id", "user_id", "host", "node",
            "reservation_id", "locked", "limit", "marker", "sort_key", "sort_dir"}
_STATUS_TO_VM = {status: vm for vm, status in STATUS_BY_VM_STATE.items()}


@dataclass
class ServerQuery:
    tests: list[Callable[[Instance], bool]] = field(default_factory=list)
    sort: list[tuple[str, bool]] = field(default_factory=list)  # (key, descending)
    limit: int = MAX_LIMIT
    marker: str | None = None


def _values(params: Mapping[str, Any], key: str) -> list[str]:
    value = params.get(key)
    if value is None:
        return []
    return [str(v) for v in value] if isinstance(value, list) else [str(value)]


def _one(params: Mapping[str, Any], key: str) -> str | None:
    values = _values(params, key)
    return values[-1] if values else None


def _time(key: str, text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text.replace(" ", "+"))
    except ValueError:
        raise BadComputeRequest(f"Invalid input for query parameters {key}. Value: {text}. "
                                f"'{text}' is not a 'date-time'") from None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _tag_set(text: str) -> set[str]:
    return {t for t in text.split(",") if t}


def parse(params: Mapping[str, Any], version: APIVersion) -> ServerQuery:
    query = ServerQuery()
    known = _FILTERS | _NEUTRAL
    if version.at_least("2.75"):
        unknown = sorted(set(params) - known)
        if unknown:
            raise BadComputeRequest(f"Invalid input for query parameters {unknown[0]}: "
                                    "Additional properties are not allowed.")
    _add_filters(query, params, version)
    query.sort = _sort(params)
    limit = _one(params, "limit")
    if limit is not None:
        if not limit.isdigit():
            raise BadComputeRequest(f"Invalid input for query parameters limit. Value: "
                                    f"{limit}. limit must be a non-negative integer.")
        query.limit = min(int(limit), MAX_LIMIT)
    query.marker = _one(params, "marker")
    return query


def _add_filters(query: ServerQuery, params: Mapping[str, Any], version: APIVersion) -> None:
    test = query.tests.append
    name = _one(params, "name")
    if name is not None:
        test(_name_test(name))
    statuses = _values(params, "status")
    if statuses:
        states = {_STATUS_TO_VM.get(s.upper(), "") for s in statuses}
        test(lambda i: i.vm_state in states)
    for key, attr in (("image", "image_id"), ("flavor", "flavor_id")):
        wanted = _one(params, key)
        if wanted is not None:
            test(_equals(attr, wanted.rstrip("/").rsplit("/", 1)[-1]))
    for key, attr in (("key_name", "key_name"), ("availability_zone", "availability_zone"),
                      ("uuid", "id"), ("vm_state", "vm_state")):
        wanted = _one(params, key)
        if wanted is not None:
            test(_equals(attr, wanted))
    if version.at_least("2.19") and _one(params, "description") is not None:
        described = re.escape(_one(params, "description") or "")
        test(lambda i: re.search(described, i.description or "") is not None)
    drive = _one(params, "config_drive")
    if drive is not None:
        test(lambda i: i.config_drive == (drive.lower() in ("true", "1", "yes", "on")))
    if _one(params, "ip") is not None or _one(params, "ip6") is not None:
        test(lambda i: False)
    _add_times(query, params, version)
    if version.at_least("2.26"):
        _add_tag_filters(query, params)


def _name_test(name: str) -> Callable[[Instance], bool]:
    try:
        pattern = regex.compile(name)
    except (regex.error, ValueError) as exc:
        raise BadComputeRequest(f"Invalid input for query parameters name: {name!r} is not "
                                f"a regular expression ({exc}).") from None
    deadline = time.monotonic() + NAME_MATCH_SECONDS

    def matches(inst: Instance) -> bool:
        left = deadline - time.monotonic()
        try:
            if left <= 0:
                raise TimeoutError
            return pattern.search(inst.name, timeout=left) is not None
        except TimeoutError:
            raise BadComputeRequest(f"Invalid input for query parameters name: matching "
                                    f"{name!r} took longer than {NAME_MATCH_SECONDS:g} s; "
                                    "use a simpler pattern.") from None

    return matches


def _equals(attr: str, value: str) -> Callable[[Instance], bool]:
    return lambda inst: bool(getattr(inst, attr) == value)


def _tag_test(want: set[str], rule: Callable[[set[str], set[str]], bool]
              ) -> Callable[[Instance], bool]:
    return lambda inst: rule(want, set(inst.tags))


def _add_times(query: ServerQuery, params: Mapping[str, Any], version: APIVersion) -> None:
    since_text = _one(params, "changes-since")
    before_text = _one(params, "changes-before") if version.at_least("2.66") else None
    since = _time("changes-since", since_text) if since_text is not None else None
    before = _time("changes-before", before_text) if before_text is not None else None
    if since is not None and before is not None and since > before:
        raise BadComputeRequest("The value of changes-since must be less than or equal to "
                                "changes-before.")
    if since is not None:
        query.tests.append(lambda i: i.updated >= since)
    if before is not None:
        query.tests.append(lambda i: i.updated <= before)


def _add_tag_filters(query: ServerQuery, params: Mapping[str, Any]) -> None:
    rules: list[tuple[str, Callable[[set[str], set[str]], bool]]] = [
        ("tags", lambda want, have: want <= have),
        ("tags-any", lambda want, have: bool(want & have)),
        ("not-tags", lambda want, have: not want <= have),
        ("not-tags-any", lambda want, have: not want & have),
    ]
    for key, rule in rules:
        text = _one(params, key)
        if text is not None:
            query.tests.append(_tag_test(_tag_set(text), rule))


def _sort(params: Mapping[str, Any]) -> list[tuple[str, bool]]:
    keys, dirs = _values(params, "sort_key"), _values(params, "sort_dir")
    for key in keys:
        if key not in _SORT_KEYS:
            raise BadComputeRequest(f"Invalid input for query parameters sort_key. Value: "
                                    f"{key}. chute sorts by {', '.join(sorted(_SORT_KEYS))}.")
    for direction in dirs:
        if direction not in ("asc", "desc"):
            raise BadComputeRequest(f"Invalid input for query parameters sort_dir. Value: "
                                    f"{direction}. 'asc' or 'desc' is required.")
    if not keys:
        return [("created_at", True)]
    return [(key, (dirs[n] if n < len(dirs) else (dirs[0] if dirs else "desc")) == "desc")
            for n, key in enumerate(keys)]


def apply(query: ServerQuery, found: list[Instance]) -> tuple[list[Instance], bool]:
    """(the page, whether a next page may follow): filtered, sorted, after the marker."""
    matched = [i for i in found if all(t(i) for t in query.tests)]
    matched.sort(key=lambda i: i.id)
    for key, descending in reversed(query.sort):
        matched.sort(key=_SORT_KEYS[key], reverse=descending)
    if query.marker is not None:
        ids = [i.id for i in matched]
        if query.marker not in ids:
            raise BadComputeRequest(f"marker [{query.marker}] not found")
        matched = matched[ids.index(query.marker) + 1:]
    page = matched[:query.limit]
    return page, len(page) == query.limit and len(matched) > 0
