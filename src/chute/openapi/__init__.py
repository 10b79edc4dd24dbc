"""OpenAPI 3.1 documents of both HTTP APIs, served at `GET /openapi.json` by each service.

The documents are hand-written (the APIs follow Glance and Nova, not a generator) and kept
honest by tests/reliability/test_openapi.py: every route the apps register is documented and
vice versa, real responses validate against the documented schemas, and a property-based fuzz
run (test_fuzz.py) finds no 5xx and no error body outside the documented shape. Schemas are
JSON Schema 2020-12 (OpenAPI 3.1), so jsonschema validates them directly.
"""

from __future__ import annotations

import json
from typing import Any

import falcon

__all__ = ["COMPUTE", "IMAGES", "OpenApiResource"]


def __getattr__(name: str) -> dict[str, Any]:
    """`COMPUTE` and `IMAGES`, each imported when first asked for (PEP 562): a chute-api
    worker serves only the image API's document and need not hold the compute API's."""
    if name == "IMAGES":
        from chute.openapi.images import DOCUMENT as images

        return images
    if name == "COMPUTE":
        from chute.openapi.compute import DOCUMENT as compute

        return compute
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class OpenApiResource:
    """`GET /openapi.json`: the document, serialized once."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.body = json.dumps(document).encode()

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.content_type = "application/json"
        resp.data = self.body
