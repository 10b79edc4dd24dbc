"""Versions, schemas, tags, actions and the service-only locations endpoint."""

from __future__ import annotations

from typing import Any

import falcon

from chute.auth.middleware import context_of
from chute.httpapi import json_response, no_body
from chute.images.options import FormatSettings
from chute.images.schema import image_schema, images_schema
from chute.images.service import ImageService

# Conservative, as the spec advises: no 2.12 (tasks) or 2.17 (new location APIs) claims.
VERSIONS = [("v2.9", "CURRENT"), ("v2.7", "SUPPORTED"), ("v2.6", "SUPPORTED"),
            ("v2.5", "SUPPORTED"), ("v2.4", "SUPPORTED"), ("v2.3", "SUPPORTED"),
            ("v2.2", "SUPPORTED"), ("v2.1", "SUPPORTED"), ("v2.0", "SUPPORTED")]


class VersionsResource:
    def __init__(self, public_endpoint: str, status: int) -> None:
        self.public_endpoint = public_endpoint
        self.status = status

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        base = (self.public_endpoint or req.prefix).rstrip("/")
        href = f"{base}/v2/"
        body = {"versions": [{"id": vid, "status": status,
                              "links": [{"rel": "self", "href": href}]}
                             for vid, status in VERSIONS]}
        json_response(resp, body, self.status)


class SchemaResource:
    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        json_response(resp, self.document)


def schema_resources(formats: FormatSettings) -> tuple[SchemaResource, SchemaResource]:
    return SchemaResource(image_schema(formats)), SchemaResource(images_schema(formats))


class TagResource:
    def __init__(self, service: ImageService) -> None:
        self.service = service

    def on_put(self, req: falcon.Request, resp: falcon.Response, image_id: str,
               tag: str) -> None:
        no_body(req)
        self.service.add_tag(image_id, tag, context_of(req))
        resp.status = falcon.HTTP_204

    def on_delete(self, req: falcon.Request, resp: falcon.Response, image_id: str,
                  tag: str) -> None:
        no_body(req)
        self.service.remove_tag(image_id, tag, context_of(req))
        resp.status = falcon.HTTP_204


class ActionResource:
    def __init__(self, service: ImageService, action: str) -> None:
        self.service = service
        self.action = action

    def on_post(self, req: falcon.Request, resp: falcon.Response, image_id: str) -> None:
        no_body(req)
        getattr(self.service, self.action)(image_id, context_of(req))
        resp.status = falcon.HTTP_204


class LocationsResource:
    """Service-only `GET /v2/images/{id}/locations` (Glance 2.17), for admins and services
    (policy fetch_image_location), and the service_token when one is set."""

    def __init__(self, service: ImageService) -> None:
        self.service = service

    def on_get(self, req: falcon.Request, resp: falcon.Response, image_id: str) -> None:
        no_body(req)
        json_response(resp, self.service.locations(image_id, context_of(req)))
