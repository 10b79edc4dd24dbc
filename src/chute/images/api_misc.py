"""Versions, schemas, tags, actions, info and the service-only locations endpoint."""

from __future__ import annotations

from typing import Any

import falcon

from chute.auth.middleware import context_of
from chute.httpapi import json_response, no_body
from chute.images.options import FormatSettings
from chute.images.schema import image_schema, images_schema
from chute.images.service import ImageService

# Only what chute implements. Glance 33 lists 2.0-2.7, 2.9, 2.15, 2.17 (and 2.8, 2.10-2.14,
# 2.16, 2.18 with multi-store or a cache). A version is cumulative: 2.6 is interoperable image
# import (chute.images.imports: glance-direct and web-download), 2.7 hidden images and the
# multihash, 2.9 the import's `all_stores`/`all_stores_must_succeed` fields (accepted and
# answered as Glance without multi-store does). 2.15 (locations API for services) and 2.17 are
# not claimed: chute has only the service-only locations read, not the location add. 2.12 (an
# image's tasks) is not claimed though `GET /v2/images/{id}/tasks` is served: 2.12 includes
# multi-store's 2.8, 2.10 and 2.11 (`/v2/stores/...`, copy-image), and Glance 33 too serves the
# route but lists 2.12 only with `enabled_backends` (so `glance image-tasks` refuses both).
VERSIONS = [("v2.9", "CURRENT"), ("v2.7", "SUPPORTED"), ("v2.6", "SUPPORTED"),
            ("v2.5", "SUPPORTED"), ("v2.4", "SUPPORTED"), ("v2.3", "SUPPORTED"),
            ("v2.2", "SUPPORTED"), ("v2.1", "SUPPORTED"), ("v2.0", "SUPPORTED")]
# With `enabled_backends` (chute.images.stores_service, chute.images.copies) Glance adds 2.8
# (multi-store), 2.10 (delete from a store), 2.11 (copy-image), 2.12 (an image's tasks) and 2.13
# (`/v2/info/stores/detail`), all served then; 2.13 is CURRENT, as in Glance without a cache.
MULTI_STORE_VERSIONS = [("v2.13", "CURRENT"), ("v2.12", "SUPPORTED"), ("v2.11", "SUPPORTED"),
                        ("v2.10", "SUPPORTED"), ("v2.9", "SUPPORTED"), ("v2.8", "SUPPORTED"),
                        *VERSIONS[1:]]
# The first path segments that name a version chute serves, all served by the `/v2` routes.
VERSION_SEGMENTS = frozenset(["v2", *(vid for vid, _ in VERSIONS)])
MULTI_STORE_SEGMENTS = frozenset(["v2", *(vid for vid, _ in MULTI_STORE_VERSIONS)])
VENDOR_MEDIA_TYPE = "application/vnd.openstack.images-"
UNVERSIONED = frozenset(["versions", "openapi.json"])


def versions_document(base: str, multi_store: bool = False) -> dict[str, Any]:
    href = f"{base.rstrip('/')}/v2/"
    listed = MULTI_STORE_VERSIONS if multi_store else VERSIONS
    return {"versions": [{"id": vid, "status": status, "links": [{"rel": "self", "href": href}]}
                         for vid, status in listed]}


class VersionsResource:
    def __init__(self, public_endpoint: str, status: int, multi_store: bool = False) -> None:
        self.public_endpoint = public_endpoint
        self.status = status
        self.multi_store = multi_store

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        json_response(resp, versions_document(self.public_endpoint or req.prefix,
                                              self.multi_store), self.status)


class VersionNegotiation:
    """Glance's version negotiation: the version comes from the first path segment (or a
    `application/vnd.openstack.images-vX` Accept header); a version chute serves is answered by
    the `/v2` routes (`/v2.3/images` is `/v2/images`), any other path gets the versions document
    with 300, whatever the method, as Glance answers `/v3/images`. `/versions[/...]` is 200."""

    def __init__(self, public_endpoint: str, multi_store: bool = False) -> None:
        self.public_endpoint = public_endpoint
        self.multi_store = multi_store
        self.segments = MULTI_STORE_SEGMENTS if multi_store else VERSION_SEGMENTS

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        first, _, rest = req.path.lstrip("/").partition("/")
        if first == "versions":
            req.path = "/versions"
            return
        if first in UNVERSIONED or (first == "" and not rest):
            return
        accept = req.get_header("Accept") or ""
        if accept.startswith(VENDOR_MEDIA_TYPE):
            version, path = accept[len(VENDOR_MEDIA_TYPE):], req.path
        else:
            version, path = first, "/" + rest if rest else ""
        if version in self.segments:
            req.path = "/v2" + path
            return
        json_response(resp, versions_document(self.public_endpoint or req.prefix,
                                              self.multi_store), 300)
        resp.complete = True


class UsageResource:
    """`GET /v2/info/usage` as Glance 33 answers it without Keystone unified limits
    (`use_keystone_limits = False`, its default): `{"usage": {}}`. Glance does not report its
    legacy `user_storage_quota` there either, and that is the only quota chute has."""

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        json_response(resp, {"usage": {}})


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
