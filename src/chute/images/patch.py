"""JSON-patch bodies of `PATCH /v2/images/{id}` -> a list of `PatchOp`s (syntax only).

Both media types Glance accepts: RFC 6902 (`application/openstack-images-v2.1-json-patch`)
and the older draft-4 style (`...-v2.0-json-patch`: `{"replace": "/name", "value": ...}`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from chute.errors import Invalid

MEDIA_V21 = "application/openstack-images-v2.1-json-patch"
MEDIA_V20 = "application/openstack-images-v2.0-json-patch"
MEDIA_TYPES = (MEDIA_V20, MEDIA_V21)
OPS = ("add", "replace", "remove")
_MISSING = object()


@dataclass(frozen=True)
class PatchOp:
    op: str
    path: str  # the single attribute name, unescaped
    value: Any = _MISSING

    @property
    def has_value(self) -> bool:
        return self.value is not _MISSING


def _attribute(pointer: object) -> str:
    if not isinstance(pointer, str) or not pointer.startswith("/") or pointer.endswith("/") \
            or "//" in pointer or re.search(r"~[^01]|~$", pointer):
        raise Invalid(f"Invalid JSON pointer for this resource: '{pointer}'")
    segments = pointer[1:].split("/")
    if len(segments) != 1:
        raise Invalid(f"Invalid JSON pointer for this resource: '{pointer}'")
    return segments[0].replace("~1", "/").replace("~0", "~")


def parse(body: object, media_type: str) -> list[PatchOp]:
    if not isinstance(body, list):
        raise Invalid("Request body must be a JSON array of operation objects.")
    ops = []
    for item in body:
        if not isinstance(item, dict):
            raise Invalid("Operations must be JSON objects.")
        if media_type == MEDIA_V20:
            names = [key for key in item if key in OPS]
            if len(names) != 1:
                raise Invalid("Operation objects must contain exactly one member named "
                              "\"add\", \"remove\", or \"replace\".")
            op, pointer = names[0], item[names[0]]
        else:
            op, pointer = item.get("op"), item.get("path")
            if op not in OPS:
                raise Invalid("Operation objects must contain exactly one member named "
                              "\"add\", \"remove\", or \"replace\".")
            if pointer is None:
                raise Invalid("Unable to find 'path' in JSON Schema change")
        name = _attribute(pointer)
        if op in ("add", "replace"):
            if "value" not in item:
                raise Invalid(f"Operation \"{op}\" requires a member named \"value\".")
            ops.append(PatchOp(op, name, item["value"]))
        else:
            ops.append(PatchOp(op, name))
    return ops
