"""Images API resources (Glance v2): thin handlers over ImageService."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

import falcon

from chute.auth.middleware import context_of
from chute.httpapi import json_response, no_body, read_json
from chute.images import patch
from chute.images.db import ImageRecord
from chute.images.service import ImageService
from chute.images.views import image_document


class _Base:
    def __init__(self, service: ImageService) -> None:
        self.service = service

    def doc(self, record: ImageRecord) -> dict[str, Any]:
        s = self.service.settings
        return image_document(record, s.show_direct_url, s.show_locations)


class ImagesResource(_Base):
    def __init__(self, service: ImageService, import_methods: tuple[str, ...],
                 store_ids: tuple[str, ...] = ()) -> None:
        super().__init__(service)
        self.import_methods = ",".join(import_methods)
        self.store_ids = ",".join(store_ids)  # Glance's header with enabled_backends

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        no_body(req)
        pairs = parse_qsl(req.query_string, keep_blank_values=True)
        page, links = self.service.list_images(pairs, context_of(req))
        json_response(resp, {"images": [self.doc(r) for r in page], **links})

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        record = self.service.create(read_json(req), context_of(req))
        json_response(resp, self.doc(record), 201)
        resp.location = f"{req.prefix}/v2/images/{record.id}"
        if self.import_methods:
            resp.set_header("OpenStack-image-import-methods", self.import_methods)
        if self.store_ids:
            resp.set_header("OpenStack-image-store-ids", self.store_ids)


class ImageResource(_Base):
    def on_get(self, req: falcon.Request, resp: falcon.Response, image_id: str) -> None:
        no_body(req)
        json_response(resp, self.doc(self.service.show(image_id, context_of(req))))

    def on_patch(self, req: falcon.Request, resp: falcon.Response, image_id: str) -> None:
        media_type = (req.content_type or "").split(";")[0].strip().lower()
        if media_type not in patch.MEDIA_TYPES:
            raise falcon.HTTPUnsupportedMediaType(
                description=f"Unsupported Content-Type {req.content_type}",
                headers={"Accept-Patch": ", ".join(patch.MEDIA_TYPES)})
        ops = patch.parse(read_json(req), media_type)
        updated = self.service.update(image_id, ops, media_type, context_of(req))
        json_response(resp, self.doc(updated))

    def on_delete(self, req: falcon.Request, resp: falcon.Response, image_id: str) -> None:
        no_body(req)
        self.service.delete(image_id, context_of(req))
        resp.status = falcon.HTTP_204
