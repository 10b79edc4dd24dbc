"""Nova v2.1 subset over Falcon: thin handlers over ComputeManager.

Errors: chute.errors classes map to statuses in ERROR_STATUS and render as Nova's
`{"itemNotFound": {"code": 404, "message": "..."}}` bodies.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

import falcon

from chute import httpapi, openapi
from chute.compute import (
    api_flavors,
    api_host,
    api_keypairs,
    api_servers,
    microversion,
    server_fields,
    server_query,
    views,
)
from chute.compute.instance import Instance
from chute.compute.manager import ComputeManager, check_name
from chute.compute.request_auth import is_admin
from chute.errors import (
    BadComputeRequest,
    ChuteError,
    ComputeConflict,
    ComputeError,
    ComputeForbidden,
    ComputeNotFound,
    FlavorNotFound,
    RemoteUnavailable,
    ServerNotFound,
)

ERROR_STATUS: dict[type[ChuteError], int] = {
    ServerNotFound: 404, FlavorNotFound: 404, BadComputeRequest: 400, ComputeError: 400,
    RemoteUnavailable: 503, ComputeNotFound: 404, ComputeConflict: 409,
    ComputeForbidden: 403,
}

# Nova's fault names by status (nova/api/openstack/wsgi.py Fault._fault_names).
FAULT_NAMES = {400: "badRequest", 401: "unauthorized", 403: "forbidden", 404: "itemNotFound",
               405: "badMethod", 409: "conflictingRequest", 413: "overLimit",
               415: "badMediaType", 429: "overLimit", 501: "notImplemented",
               503: "serviceUnavailable"}


def nova_renderer(req: falcon.Request, info: httpapi.ErrorInfo) -> tuple[str, bytes]:
    name = FAULT_NAMES.get(info.status, "computeFault")
    body = {name: {"code": info.status, "message": info.message}}
    return "application/json", json.dumps(body).encode()


def _base_url(req: falcon.Request) -> str:
    return req.prefix.rstrip("/")


class Versions:
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        httpapi.json_response(resp, views.versions(_base_url(req)), 300 if req.path == "/" else 200)


class Version:
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        httpapi.json_response(resp, views.version(_base_url(req)))


class Servers:
    def __init__(self, manager: ComputeManager, detail: bool) -> None:
        self.manager = manager
        self.detail = detail

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        base_url, version = _base_url(req), microversion.of(req)
        query = server_query.parse(req.params, version)
        page, more = server_query.apply(query, self.manager.list())
        admin = is_admin(req)
        servers = [views.server_detail(base_url, inst, version, admin) if self.detail
                   else views.server_summary(base_url, inst) for inst in page]
        body: dict[str, Any] = {"servers": servers}
        if more and page:
            body["servers_links"] = [{"rel": "next", "href": _next_page(req, page[-1].id)}]
        httpapi.json_response(resp, body)

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        request = server_fields.parse_create(httpapi.read_json(req), microversion.of(req))
        inst = self.manager.create(request, api_keypairs.request_user(req))[0]
        base_url = _base_url(req)
        resp.set_header("Location", f"{base_url}/v2.1/servers/{inst.id}")
        httpapi.json_response(resp, {"server": views.server_created(base_url, inst)}, 202)


def _next_page(req: falcon.Request, marker: str) -> str:
    params = [(k, v) for k, v in req.params.items() if k != "marker"]
    flat = [(k, item) for k, v in params for item in (v if isinstance(v, list) else [v])]
    return f"{_base_url(req)}{req.path}?{urlencode([*flat, ('marker', marker)])}"


class ServersDetail(Servers):
    """GET only: Nova has no POST /servers/detail (it would have booted a server)."""

    on_post = None  # type: ignore[assignment]


class Server:
    def __init__(self, manager: ComputeManager) -> None:
        self.manager = manager

    def on_get(self, req: falcon.Request, resp: falcon.Response, server_id: str) -> None:
        inst = self.manager.get(server_id)
        httpapi.json_response(resp, {"server": views.server_detail(
            _base_url(req), inst, microversion.of(req), is_admin(req))})

    def on_put(self, req: falcon.Request, resp: falcon.Response, server_id: str) -> None:
        version = microversion.of(req)
        update = server_fields.parse_update(httpapi.read_json(req), version)
        name = _check_new_name(update.name)

        def apply(inst: Instance) -> None:
            if name is not None:
                inst.name = name
            if update.has_description:
                inst.description = update.description

        inst = self.manager.edit(server_id, apply)
        httpapi.json_response(resp, {"server": views.server_detail(_base_url(req), inst,
                                                                   version, is_admin(req))})

    def on_delete(self, req: falcon.Request, resp: falcon.Response, server_id: str) -> None:
        self.manager.delete(server_id)
        resp.status = falcon.HTTP_204


def _check_new_name(name: object) -> str | None:
    return None if name is None else check_name(name)


def create_app(manager: ComputeManager) -> falcon.App[falcon.Request, falcon.Response]:
    middleware: list[Any] = [httpapi.RequestIdMiddleware(),
                             microversion.MicroversionMiddleware()]
    app = falcon.App(middleware=middleware)
    app.req_options.strip_url_path_trailing_slash = True
    httpapi.install_error_handling(app, ERROR_STATUS, nova_renderer)
    httpapi.install_method_rules(app)
    app.add_route("/", Versions())
    app.add_route("/openapi.json", openapi.OpenApiResource(openapi.COMPUTE))
    app.add_route("/v2.1", Version())
    app.add_route("/v2.1/flavors", api_flavors.FlavorList(detail=False))
    app.add_route("/v2.1/flavors/detail", api_flavors.FlavorDetailList(detail=True))
    app.add_route("/v2.1/flavors/{flavor_id}", api_flavors.FlavorItem())
    app.add_route("/v2.1/flavors/{flavor_id}/os-flavor-access", api_flavors.FlavorAccess())
    app.add_route("/v2.1/flavors/{flavor_id}/action", api_flavors.FlavorAction())
    app.add_route("/v2.1/servers", Servers(manager, detail=False))
    app.add_route("/v2.1/servers/detail", ServersDetail(manager, detail=True))
    app.add_route("/v2.1/servers/{server_id}", Server(manager))
    app.add_route("/v2.1/os-keypairs", api_keypairs.KeypairList(manager))
    app.add_route("/v2.1/os-keypairs/{name}", api_keypairs.KeypairItem(manager))
    _add_server_routes(app, manager)
    _add_host_routes(app, manager)
    return app


def _add_server_routes(app: httpapi.App, manager: ComputeManager) -> None:
    server = "/v2.1/servers/{server_id}"
    app.add_route(f"{server}/metadata", api_servers.ServerMetadata(manager))
    app.add_route(f"{server}/metadata/{{key}}", api_servers.ServerMetadataItem(manager))
    app.add_route(f"{server}/tags", api_servers.ServerTags(manager))
    app.add_route(f"{server}/tags/{{tag}}", api_servers.ServerTag(manager))
    app.add_route(f"{server}/os-security-groups", api_servers.ServerSecurityGroups(manager))
    app.add_route(f"{server}/os-instance-actions", api_servers.InstanceActionList(manager))
    app.add_route(f"{server}/os-instance-actions/{{request_id}}",
                  api_servers.InstanceActionItem(manager))


def _add_host_routes(app: httpapi.App, manager: ComputeManager) -> None:
    app.add_route("/v2.1/os-availability-zone", api_host.AvailabilityZones(manager, False))
    app.add_route("/v2.1/os-availability-zone/detail",
                  api_host.AvailabilityZones(manager, True))
    app.add_route("/v2.1/flavors/{flavor_id}/os-extra_specs", api_host.FlavorExtraSpecs())
    app.add_route("/v2.1/flavors/{flavor_id}/os-extra_specs/{key}",
                  api_host.FlavorExtraSpec())
    app.add_route("/v2.1/limits", api_host.Limits(manager))
