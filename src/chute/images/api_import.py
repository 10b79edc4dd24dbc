"""Interoperable import: `GET /v2/info/import`, `PUT .../stage`, `POST .../import`."""

from __future__ import annotations

import falcon

from chute.auth.middleware import context_of
from chute.httpapi import json_response, no_body, read_json
from chute.images.api_data import ReceivingResource
from chute.images.body import open_body
from chute.images.imports import ImportService


class ImportInfoResource:
    def __init__(self, methods: tuple[str, ...]) -> None:
        self.methods = methods

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        no_body(req)
        json_response(resp, {"import-methods": {
            "description": "Import methods available.", "type": "array",
            "value": list(self.methods)}})


class StageResource(ReceivingResource):
    """`PUT /v2/images/{id}/stage`: the upload's checks, limits and stall handling; the bytes
    go to the staging area (chute.images.imports)."""

    def __init__(self, imports: ImportService, socket_timeout: float) -> None:
        super().__init__(imports.data, socket_timeout)
        self.imports = imports

    def receive(self, req: falcon.Request, image_id: str, declared: int | None) -> None:
        self.imports.stage(image_id, open_body(req.env), declared)


class ImportResource:
    def __init__(self, imports: ImportService) -> None:
        self.imports = imports

    def on_post(self, req: falcon.Request, resp: falcon.Response, image_id: str) -> None:
        body = read_json(req)
        self.imports.data.service.authorized(image_id, context_of(req), "upload_image")
        self.imports.start(image_id, body)
        resp.status = falcon.HTTP_202
        # Glance's empty 202 is webob's text/html: glanceclient parses a body typed
        # application/json, and an empty one is a JSON error that fails `image-import`.
        resp.content_type = "text/html; charset=UTF-8"
