"""`filesystem_store_metadata_file`: which shared filesystem a new image file lies on.

Glance returns the first entry whose mountpoint is a *string prefix* of the file path, so
`/mnt/nfs1` wrongly claims `/mnt/nfs10/...`. We compare path components and let the most
specific (longest) mountpoint win, independent of the order in the file.
"""

from __future__ import annotations

import json
import os
from typing import Any

from chute.config import Fail
from chute.stores.options import SECTION

OPTION = "filesystem_store_metadata_file"


def _check_values(value: object, where: str) -> None:
    """Glance's check_location_metadata: only strings, lists and objects anywhere."""
    if isinstance(value, dict):
        for key, item in value.items():
            _check_values(item, f"{where}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check_values(item, f"{where}[{index}]")
    elif not isinstance(value, str):
        raise ValueError(f"{where} is {json.dumps(value)}; only strings, lists and objects "
                         "are allowed")


def load(path: str, fail: Fail, section: str = SECTION) -> list[dict[str, Any]]:
    """Read and validate the metadata file at `path` ("": none); raise `fail(...)` naming the
    option (of `section`: a store's own section with several stores) on any problem."""
    if not path:
        return []
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except OSError as exc:
        raise fail(section, OPTION, f"cannot read {path}: {exc.strerror}") from None
    except ValueError as exc:
        raise fail(section, OPTION, f"{path} is not valid JSON: {exc}") from None
    entries = [data] if isinstance(data, dict) else data
    if not isinstance(entries, list) or not entries:
        raise fail(section, OPTION, f"{path} must hold an object or a non-empty list of "
                                    "objects with 'id' and 'mountpoint'")
    for index, entry in enumerate(entries):
        label = f"{path} entry {index}"
        if not isinstance(entry, dict):
            raise fail(section, OPTION, f"{label} is not an object")
        for key in ("id", "mountpoint"):
            if not isinstance(entry.get(key), str) or not entry[key]:
                raise fail(section, OPTION, f"{label} needs a non-empty string '{key}'")
        if not os.path.isabs(entry["mountpoint"]):
            raise fail(section, OPTION, f"{label} mountpoint {entry['mountpoint']!r} is "
                                        "not an absolute path")
        try:
            _check_values(entry, label)
        except ValueError as exc:
            raise fail(section, OPTION, str(exc)) from None
    return entries


def _parts(path: str) -> tuple[str, ...]:
    return tuple(part for part in os.path.normpath(path).split(os.sep) if part)


def match(entries: list[dict[str, Any]], path: str) -> dict[str, Any]:
    """The entry whose mountpoint contains `path` by components, most specific first; {} if none."""
    target = _parts(path)
    best: dict[str, Any] = {}
    best_len = -1
    for entry in entries:
        mount = _parts(entry["mountpoint"])
        if target[:len(mount)] == mount and len(mount) > best_len:
            best, best_len = entry, len(mount)
    return dict(best)
