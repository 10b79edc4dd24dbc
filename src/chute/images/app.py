"""Build the chute-api WSGI app: routes, middleware, error mapping (the only HTTP edge)."""

from __future__ import annotations

import os
from typing import Any

import falcon

from chute import errors, openapi
from chute.auth.middleware import ContextMiddleware
from chute.auth.policy import IMAGE_RULES, for_service
from chute.httpapi import (
    App,
    RequestIdMiddleware,
    install_error_handling,
    install_method_rules,
    webob_renderer,
)
from chute.images import api, api_data, api_import, api_members, api_misc, api_stores, ids
from chute.images.api_extents import ExtentsResource
from chute.images.data import ImageData
from chute.images.db import Database, make_engine
from chute.images.imports import ImportService
from chute.images.members import MemberService
from chute.images.options import ApiSettings
from chute.images.schema import Validator
from chute.images.service import ImageService
from chute.images.stores_service import StoreService
from chute.stores.backends import Backends

ERROR_STATUS: dict[type[errors.ChuteError], int] = {
    errors.NotFound: 404,
    errors.Forbidden: 403,
    errors.Conflict: 409,
    errors.Invalid: 400,
    errors.TooLarge: 413,
    errors.StorageFull: 413,
    errors.UnsupportedFormat: 415,
    errors.Gone: 410,
    errors.Unauthenticated: 401,
    errors.PolicyDenied: 403,
}


class CanonicalImageId:
    """Every `{image_id}` of a path, in its one stored form before any resource sees it
    (chute.images.ids says why). An id that is no UUID names no image: 404, as Glance
    answers for `GET /v2/images/<a name>` (openstacksdk's find_image relies on it)."""

    def process_resource(self, req: falcon.Request, resp: falcon.Response, resource: Any,
                         params: dict[str, Any]) -> None:
        if "image_id" in params:
            image_id = ids.canonical(params["image_id"])
            if image_id is None:
                raise errors.NotFound(f"No image found with ID {params['image_id']}")
            params["image_id"] = image_id


def database_url(connection: str, store: Backends) -> str:
    """`[database] connection`, or SQLite beside the datadir (the data root)."""
    if connection:
        return connection
    return f"sqlite:///{os.path.join(store.root, 'chute-api.sqlite')}"


def make_app(settings: ApiSettings, store: Backends) -> App:
    """One app per worker process (engines and pools must not cross a fork)."""
    db = Database(make_engine(database_url(settings.database_connection, store)))
    service = ImageService(settings.service, Validator(settings.formats), db, [store],
                           for_service(IMAGE_RULES, settings.auth.strategy,
                                       settings.auth.policy_file))
    data = ImageData(settings.upload, service, store)
    members = MemberService(service)
    imports = ImportService(data, settings.imports)
    stores = StoreService(service, store)
    middleware: list[Any] = [RequestIdMiddleware(), ContextMiddleware(settings.auth)]
    app = falcon.App(middleware=middleware)
    app.req_options.auto_parse_form_urlencoded = False
    app.resp_options.secure_cookies_by_default = False
    install_error_handling(app, ERROR_STATUS, webob_renderer)
    install_method_rules(app)
    app.add_middleware(CanonicalImageId())  # after the method rules: 405 before 404

    public = settings.public_endpoint
    app.add_middleware(api_misc.VersionNegotiation(public, store.multi))
    image_schema, images_schema = api_misc.schema_resources(settings.formats)
    app.add_route("/", api_misc.VersionsResource(public, 300, store.multi))
    app.add_route("/versions", api_misc.VersionsResource(public, 200, store.multi))
    app.add_route("/v2/schemas/image", image_schema)
    app.add_route("/v2/schemas/images", images_schema)
    app.add_route("/v2/images", api.ImagesResource(service, settings.imports.methods,
                                                    store.ids))
    app.add_route("/v2/images/{image_id}", api.ImageResource(service))
    app.add_route("/v2/images/{image_id}/file",
                  api_data.FileResource(data, settings.server.client_socket_timeout))
    app.add_route("/v2/images/{image_id}/stage",
                  api_import.StageResource(imports, settings.server.client_socket_timeout))
    app.add_route("/v2/images/{image_id}/import", api_import.ImportResource(imports))
    app.add_route("/v2/images/{image_id}/tasks", api_import.ImageTasksResource(imports))
    app.add_route("/v2/images/{image_id}/extents", ExtentsResource(service))
    app.add_route("/v2/images/{image_id}/tags/{tag}", api_misc.TagResource(service))
    app.add_route("/v2/images/{image_id}/actions/deactivate",
                  api_misc.ActionResource(service, "deactivate"))
    app.add_route("/v2/images/{image_id}/actions/reactivate",
                  api_misc.ActionResource(service, "reactivate"))
    app.add_route("/v2/images/{image_id}/locations", api_misc.LocationsResource(service))
    app.add_route("/v2/schemas/member", api_misc.SchemaResource(api_members.MEMBER_SCHEMA))
    app.add_route("/v2/schemas/members", api_misc.SchemaResource(api_members.MEMBERS_SCHEMA))
    app.add_route("/v2/images/{image_id}/members", api_members.MembersResource(members))
    app.add_route("/v2/images/{image_id}/members/{member_id}",
                  api_members.MemberResource(members))
    app.add_route("/v2/info/import", api_import.ImportInfoResource(settings.imports.methods))
    app.add_route("/v2/info/usage", api_misc.UsageResource())
    app.add_route("/v2/info/stores", api_stores.StoresInfoResource(stores, detail=False))
    app.add_route("/v2/info/stores/detail", api_stores.StoresInfoResource(stores, detail=True))
    app.add_route("/v2/stores/{store_id}/{image_id}", api_stores.StoreImageResource(stores))
    app.add_route("/openapi.json", openapi.OpenApiResource(openapi.IMAGES))
    return app
