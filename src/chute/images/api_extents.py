"""`GET /v2/images/{id}/extents`: where the image's data lies (chute extension, see extents)."""

from __future__ import annotations

import falcon

from chute.auth.middleware import context_of
from chute.httpapi import json_response, no_body
from chute.images.extents import as_document, image_extents
from chute.images.service import ImageService


class ExtentsResource:
    def __init__(self, service: ImageService) -> None:
        self.service = service

    def on_get(self, req: falcon.Request, resp: falcon.Response, image_id: str) -> None:
        no_body(req)
        self.service.authorized(image_id, context_of(req), "download_image")
        found = image_extents(self.service, image_id)
        if found is None:  # as GET /file: the image has no data
            resp.status = falcon.HTTP_204
            return
        json_response(resp, as_document(found))
