"""Nova v2.1 subset over Falcon: thin handlers over ComputeManager.

Errors: chute.errors classes map to statuses in ERROR_STATUS and render as Nova's
`{"itemNotFound": {"code": 404, "message": "..."}}` bodies.
"""

from __future__ import annotations

import json
from typing import Any

import falcon

from chute import httpapi, openapi
from chute.auth.context import RequestContext
from chute.auth.middleware import ContextMiddleware, context_of
from chute.auth.options import NOAUTH_SETTINGS, AuthSettings
from chute.auth.policy import COMPUTE_RULES, Authorizer, for_service
from chute.compute import flavors, views
from chute.compute.manager import ComputeManager
from chute.errors import (
    BadComputeRequest,
    ChuteError,
    ComputeError,
    FlavorNotFound,
    PolicyDenied,
    RemoteUnavailable,
    ServerNotFound,
    Unauthenticated,
)

ERROR_STATUS: dict[type[ChuteError], int] = {
    ServerNotFound: 404, FlavorNotFound: 404, BadComputeRequest: 400, ComputeError: 400,
    RemoteUnavailable: 503, Unauthenticated: 401, PolicyDenied: 403,
}
SERVERS = "os_compute_api:servers"

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


class _VersionHeader:
    """Clients negotiating microversions (openstacksdk, novaclient) read these headers."""

    def process_response(self, req: falcon.Request, resp: falcon.Response, resource: Any,
                         req_succeeded: bool) -> None:
        resp.set_header("OpenStack-API-Version", "compute 2.1")
        resp.set_header("X-OpenStack-Nova-API-Version", "2.1")
        resp.set_header("Vary", "OpenStack-API-Version, X-OpenStack-Nova-API-Version")


class Versions:
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        httpapi.json_response(resp, views.versions(_base_url(req)), 300 if req.path == "/" else 200)


class Version:
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        httpapi.json_response(resp, views.version(_base_url(req)))


class Flavors:
    def __init__(self, detail: bool) -> None:
        self.render = views.flavor_detail if detail else views.flavor_summary

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        base_url = _base_url(req)
        httpapi.json_response(resp, {"flavors": [self.render(base_url, f)
                                                 for f in flavors.all_flavors()]})


class Flavor:
    def on_get(self, req: falcon.Request, resp: falcon.Response, flavor_id: str) -> None:
        flavor = flavors.get(flavor_id)
        httpapi.json_response(resp, {"flavor": views.flavor_detail(_base_url(req), flavor)})


class ServerRules:
    """Nova's rules for servers: which project a caller's lookups are limited to, and the
    policy checks (`os_compute_api:servers:*`)."""

    def __init__(self, policy: Authorizer) -> None:
        self.policy = policy

    @staticmethod
    def scope(ctx: RequestContext) -> str | None:
        """The project a lookup by id is limited to; None (any) for admins and under noauth."""
        return None if ctx.is_admin or not ctx.scoped else ctx.project_id

    def authorize(self, action: str, project_id: str | None, ctx: RequestContext) -> None:
        self.policy.authorize(f"{SERVERS}:{action}", {"project_id": project_id or ""}, ctx)

    def listed(self, req: falcon.Request, detail: bool) -> str | None:
        """The project whose servers a list shows (None: all, for admins with all_tenants)."""
        ctx = context_of(req)
        action = "detail" if detail else "index"
        self.authorize(action, ctx.project_id, ctx)
        all_tenants = req.get_param("all_tenants")
        if all_tenants is not None and all_tenants.lower() not in ("0", "false", "off", "no"):
            self.authorize(f"{action}:get_all_tenants", ctx.project_id, ctx)
            return None
        return ctx.project_id if ctx.scoped else None


class Servers:
    def __init__(self, manager: ComputeManager, rules: ServerRules, detail: bool) -> None:
        self.manager = manager
        self.rules = rules
        self.detail = detail
        self.render = views.server_detail if detail else views.server_summary

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        base_url = _base_url(req)
        project_id = self.rules.listed(req, self.detail)
        servers = [self.render(base_url, inst) for inst in self.manager.list(project_id)]
        httpapi.json_response(resp, {"servers": servers})

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = httpapi.read_json(req)
        if not isinstance(body, dict) or not isinstance(body.get("server"), dict):
            raise BadComputeRequest("The request body must be {\"server\": {...}}.")
        server = body["server"]
        ctx = context_of(req)
        self.rules.authorize("create", ctx.project_id, ctx)
        inst = self.manager.create(server.get("name"), server.get("imageRef"),
                                   server.get("flavorRef"), ctx)
        base_url = _base_url(req)
        resp.set_header("Location", f"{base_url}/v2.1/servers/{inst.id}")
        httpapi.json_response(resp, {"server": views.server_created(base_url, inst)}, 202)


class ServersDetail(Servers):
    """GET only: Nova has no POST /servers/detail (it would have booted a server)."""

    on_post = None  # type: ignore[assignment]


class Server:
    def __init__(self, manager: ComputeManager, rules: ServerRules) -> None:
        self.manager = manager
        self.rules = rules

    def on_get(self, req: falcon.Request, resp: falcon.Response, server_id: str) -> None:
        ctx = context_of(req)
        inst = self.manager.get(server_id, self.rules.scope(ctx))
        self.rules.authorize("show", inst.project_id, ctx)
        httpapi.json_response(resp, {"server": views.server_detail(_base_url(req), inst)})

    def on_delete(self, req: falcon.Request, resp: falcon.Response, server_id: str) -> None:
        ctx = context_of(req)
        scope = self.rules.scope(ctx)
        self.rules.authorize("delete", self.manager.get(server_id, scope).project_id, ctx)
        self.manager.delete(server_id, scope)
        resp.status = falcon.HTTP_204


def create_app(manager: ComputeManager, auth: AuthSettings = NOAUTH_SETTINGS
               ) -> falcon.App[falcon.Request, falcon.Response]:
    middleware: list[Any] = [httpapi.RequestIdMiddleware(), _VersionHeader(),
                             ContextMiddleware(auth)]
    rules = ServerRules(for_service(COMPUTE_RULES, auth.strategy, auth.policy_file))
    app = falcon.App(middleware=middleware)
    app.req_options.strip_url_path_trailing_slash = True
    httpapi.install_error_handling(app, ERROR_STATUS, nova_renderer)
    httpapi.install_method_rules(app)
    app.add_route("/", Versions())
    app.add_route("/openapi.json", openapi.OpenApiResource(openapi.COMPUTE))
    app.add_route("/v2.1", Version())
    app.add_route("/v2.1/flavors", Flavors(detail=False))
    app.add_route("/v2.1/flavors/detail", Flavors(detail=True))
    app.add_route("/v2.1/flavors/{flavor_id}", Flavor())
    app.add_route("/v2.1/servers", Servers(manager, rules, detail=False))
    app.add_route("/v2.1/servers/detail", ServersDetail(manager, rules, detail=True))
    app.add_route("/v2.1/servers/{server_id}", Server(manager, rules))
    return app
