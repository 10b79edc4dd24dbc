"""Nova v2.1 subset over Falcon: thin handlers over a ServerService (compute/server_service.py).

Errors: chute.errors classes map to statuses in ERROR_STATUS and render as Nova's
`{"itemNotFound": {"code": 404, "message": "..."}}` bodies.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

import falcon

from chute import httpapi, openapi
from chute.auth.context import RequestContext
from chute.auth.middleware import ContextMiddleware, context_of
from chute.auth.options import NOAUTH_SETTINGS, AuthSettings
from chute.auth.policy import COMPUTE_RULES, Authorizer, for_service
from chute.compute import (
    api_flavors,
    api_host,
    api_keypairs,
    api_quotas,
    api_servers,
    microversion,
    server_fields,
    server_query,
    views,
)
from chute.compute.instance import Instance
from chute.compute.manager import check_name
from chute.compute.request_auth import is_admin
from chute.compute.server_service import ServerService
from chute.errors import (
    BadComputeRequest,
    ChuteError,
    ComputeConflict,
    ComputeError,
    ComputeForbidden,
    ComputeNotFound,
    FlavorNotFound,
    HypervisorUnavailable,
    InstanceInvalidState,
    PolicyDenied,
    RemoteUnavailable,
    ServerNotFound,
    Unauthenticated,
)

ERROR_STATUS: dict[type[ChuteError], int] = {
    ServerNotFound: 404, FlavorNotFound: 404, BadComputeRequest: 400, ComputeError: 400,
    RemoteUnavailable: 503, ComputeNotFound: 404, ComputeConflict: 409,
    ComputeForbidden: 403, Unauthenticated: 401, PolicyDenied: 403,
    InstanceInvalidState: 409, HypervisorUnavailable: 503,
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


class Versions:
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        httpapi.json_response(resp, views.versions(_base_url(req)), 300 if req.path == "/" else 200)


class Version:
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        httpapi.json_response(resp, views.version(_base_url(req)))


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


class ServerScope:
    """Every route under /servers/{server_id} meets the caller's project here, in one place,
    so that no sub-resource (metadata, tags, actions, ...) can forget it: another project's
    server is 404 as in Nova, and reading needs Nova's `show` rule, changing it `update`
    (project member). Handlers may check a stricter rule of their own (delete)."""

    READS = frozenset({"GET", "HEAD"})

    def __init__(self, manager: ServerService, rules: ServerRules) -> None:
        self.manager = manager
        self.rules = rules

    def process_resource(self, req: falcon.Request, resp: falcon.Response, resource: Any,
                         params: dict[str, Any]) -> None:
        server_id = params.get("server_id")
        if resource is None or not isinstance(server_id, str):
            return
        ctx = context_of(req)
        scope = self.rules.scope(ctx)
        try:
            project_id = self.manager.get(server_id, scope).project_id
        except ServerNotFound:
            if not getattr(resource, "outlives_server", False):
                raise
            project_id = self._project_of_deleted(server_id, scope)
        self.rules.authorize("show" if req.method in self.READS else "update", project_id, ctx)

    def _project_of_deleted(self, server_id: str, scope: str | None) -> str | None:
        """A deleted server's actions stay readable (Nova, 2.21): its project is the one
        its actions recorded."""
        found = self.manager.actions.list(server_id)
        if found and (scope is None or found[0].project_id == scope):
            return found[0].project_id or None
        raise ServerNotFound(f"Instance {server_id} could not be found.")


class Servers:
    def __init__(self, manager: ServerService, rules: ServerRules, detail: bool) -> None:
        self.manager = manager
        self.rules = rules
        self.detail = detail

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        base_url, version = _base_url(req), microversion.of(req)
        query = server_query.parse(req.params, version)
        project_id = self.rules.listed(req, self.detail)
        page, more = server_query.apply(query, self.manager.list(project_id))
        admin = is_admin(req)
        servers = [views.server_detail(base_url, inst, version, admin) if self.detail
                   else views.server_summary(base_url, inst) for inst in page]
        body: dict[str, Any] = {"servers": servers}
        if more and page:
            body["servers_links"] = [{"rel": "next", "href": _next_page(req, page[-1].id)}]
        httpapi.json_response(resp, body)

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        request = server_fields.parse_create(httpapi.read_json(req), microversion.of(req))
        ctx = context_of(req)
        self.rules.authorize("create", ctx.project_id, ctx)
        inst = self.manager.create(request, ctx)[0]
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
    def __init__(self, manager: ServerService, rules: ServerRules) -> None:
        self.manager = manager
        self.rules = rules

    def on_get(self, req: falcon.Request, resp: falcon.Response, server_id: str) -> None:
        ctx = context_of(req)
        inst = self.manager.get(server_id, self.rules.scope(ctx))
        self.rules.authorize("show", inst.project_id, ctx)
        httpapi.json_response(resp, {"server": views.server_detail(
            _base_url(req), inst, microversion.of(req), is_admin(req))})

    def on_put(self, req: falcon.Request, resp: falcon.Response, server_id: str) -> None:
        ctx = context_of(req)
        inst = self.manager.get(server_id, self.rules.scope(ctx))
        self.rules.authorize("update", inst.project_id, ctx)
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
        ctx = context_of(req)
        scope = self.rules.scope(ctx)
        self.rules.authorize("delete", self.manager.get(server_id, scope).project_id, ctx)
        self.manager.delete(server_id, scope)
        resp.status = falcon.HTTP_204


class ServerAction:
    """POST /servers/{id}/action: 202 without a body, or 200 with the action's answer."""

    def __init__(self, manager: ServerService) -> None:
        self.manager = manager

    def on_post(self, req: falcon.Request, resp: falcon.Response, server_id: str) -> None:
        answer = self.manager.server_actions.perform(server_id, httpapi.read_json(req))
        if answer is None:
            resp.status = falcon.HTTP_202
        else:
            httpapi.json_response(resp, answer)


def _check_new_name(name: object) -> str | None:
    return None if name is None else check_name(name)


def create_app(manager: ServerService, auth: AuthSettings = NOAUTH_SETTINGS
               ) -> falcon.App[falcon.Request, falcon.Response]:
    rules = ServerRules(for_service(COMPUTE_RULES, auth.strategy, auth.policy_file))
    middleware: list[Any] = [httpapi.RequestIdMiddleware(),
                             microversion.MicroversionMiddleware(),
                             ContextMiddleware(auth), ServerScope(manager, rules)]
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
    app.add_route("/v2.1/servers", Servers(manager, rules, detail=False))
    app.add_route("/v2.1/servers/detail", ServersDetail(manager, rules, detail=True))
    app.add_route("/v2.1/servers/{server_id}", Server(manager, rules))
    app.add_route("/v2.1/os-keypairs", api_keypairs.KeypairList(manager))
    app.add_route("/v2.1/os-keypairs/{name}", api_keypairs.KeypairItem(manager))
    app.add_route("/v2.1/servers/{server_id}/action", ServerAction(manager))
    _add_server_routes(app, manager)
    _add_host_routes(app, manager)
    _add_quota_routes(app, manager, rules.policy)
    return app


def _add_server_routes(app: httpapi.App, manager: ServerService) -> None:
    server = "/v2.1/servers/{server_id}"
    app.add_route(f"{server}/metadata", api_servers.ServerMetadata(manager))
    app.add_route(f"{server}/metadata/{{key}}", api_servers.ServerMetadataItem(manager))
    app.add_route(f"{server}/tags", api_servers.ServerTags(manager))
    app.add_route(f"{server}/tags/{{tag}}", api_servers.ServerTag(manager))
    app.add_route(f"{server}/os-security-groups", api_servers.ServerSecurityGroups(manager))
    app.add_route(f"{server}/ips", api_servers.ServerIps(manager))
    app.add_route(f"{server}/ips/{{network}}", api_servers.ServerIpsOfNetwork(manager))
    app.add_route(f"{server}/os-instance-actions", api_servers.InstanceActionList(manager))
    app.add_route(f"{server}/os-instance-actions/{{request_id}}",
                  api_servers.InstanceActionItem(manager))


def _add_host_routes(app: httpapi.App, manager: ServerService) -> None:
    app.add_route("/v2.1/os-availability-zone", api_host.AvailabilityZones(manager, False))
    app.add_route("/v2.1/os-availability-zone/detail",
                  api_host.AvailabilityZones(manager, True))
    app.add_route("/v2.1/flavors/{flavor_id}/os-extra_specs", api_host.FlavorExtraSpecs())
    app.add_route("/v2.1/flavors/{flavor_id}/os-extra_specs/{key}",
                  api_host.FlavorExtraSpec())
    app.add_route("/v2.1/limits", api_host.Limits(manager))


def _add_quota_routes(app: httpapi.App, manager: ServerService, policy: Authorizer) -> None:
    quotas = "/v2.1/os-quota-sets/{project_id}"
    app.add_route(quotas, api_quotas.QuotaSet(manager, policy))
    app.add_route(f"{quotas}/detail", api_quotas.QuotaSetDetail(manager, policy))
    app.add_route(f"{quotas}/defaults", api_quotas.QuotaSetDefaults(manager, policy))
