"""The image JSON schemas (`/v2/schemas/image(s)`) and validation against them.

The base document is Glance 33's own `/v2/schemas/image` (captured verbatim in
schema-image.json) plus our read-only `os_glance_blake3_blocks`; the format enums come from
`[image_format]`. python-glanceclient validates every image document it receives against
this schema with warlock, so the documents we render must always conform.
"""

from __future__ import annotations

import copy
import json
import unicodedata
from functools import lru_cache
from importlib import resources
from typing import Any

import jsonschema

from chute.errors import Invalid
from chute.images.options import FormatSettings

# The blake3-blocks digest compute hosts verify their copies with
# (docs/architecture.md#block-digest). It lives in Glance's reserved `os_glance_` namespace:
# Glance refuses that prefix in every user's create and PATCH, so no image, script or migration
# from a real Glance holds a property of that name, and users keep every name Glance allows.
BLOCKS_KEY = "os_glance_blake3_blocks"


@lru_cache(maxsize=1)
def _base() -> dict[str, Any]:
    text = resources.files("chute.images").joinpath("schema-image.json").read_text("utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


def image_schema(formats: FormatSettings) -> dict[str, Any]:
    schema = copy.deepcopy(_base())
    props = schema["properties"]
    props["disk_format"]["enum"] = [None, *formats.disk_formats]
    props["container_format"]["enum"] = [None, *formats.container_formats]
    return schema


def images_schema(formats: FormatSettings) -> dict[str, Any]:
    return {
        "name": "images",
        "properties": {
            "images": {"type": "array", "items": image_schema(formats)},
            "first": {"type": "string"},
            "next": {"type": "string"},
            "schema": {"type": "string"},
        },
        "links": [{"rel": "first", "href": "{first}"}, {"rel": "next", "href": "{next}"},
                  {"rel": "describedby", "href": "{schema}"}],
    }


class Validator:
    """Validates request documents against the image schema (400 with the first problem)."""

    def __init__(self, formats: FormatSettings) -> None:
        self.schema = image_schema(formats)
        self._validator = jsonschema.Draft4Validator(self.schema)

    @property
    def base_keys(self) -> set[str]:
        return set(self.schema["properties"])

    def validate(self, document: dict[str, Any]) -> None:
        error = jsonschema.exceptions.best_match(self._validator.iter_errors(document))
        if error is not None:
            where = ".".join(str(p) for p in error.absolute_path)
            prefix = "Provided object does not match schema 'image': "
            detail = error.message if not where else f"{where}: {error.message}"
            raise Invalid(prefix + detail)
        name = document.get("name")
        if isinstance(name, str):
            _check_printable("name", name)


# Characters a name may not hold, beside the C0/C1 controls (category Cc): they reorder or hide
# what an operator reads in a listing or a log (bidirectional embeddings, overrides, isolates
# and marks; line and paragraph separators). Nova refuses every non-printable character in
# server names (compute.manager's check); Glance's schema sets no pattern.
_INVISIBLE = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e"
                       "\u2066\u2067\u2068\u2069\u2028\u2029")


def _check_printable(field: str, text: str) -> None:
    """400 naming the field, the character and where it is."""
    for position, char in enumerate(text):
        if char in _INVISIBLE or unicodedata.category(char) == "Cc":
            raise Invalid(f"Provided object does not match schema 'image': {field}: "
                          f"U+{ord(char):04X} at position {position} is a control or "
                          "bidirectional-formatting character.")
