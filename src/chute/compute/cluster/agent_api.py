"""The agent's HTTP surface: the internal endpoints the compute API calls (service role when
auth is on), and the version documents (probes). No servers API: users reach servers through
the compute API only, so every guest on this host is one the compute API placed here.

    POST   /internal/v1/builds                     {"instance": {...}}: 202, idempotent
    POST   /internal/v1/instances/{id}/action      a Nova action body: its answer
    DELETE /internal/v1/instances/{id}             204, also when unknown here
    POST   /internal/v1/images/{image_id}/precache 202: fetched into _base meanwhile;
                                                   {"request_id": R} (optional): the
                                                   outcome is reported to the compute API
                                                   with R (cached, or failed with why)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import falcon

from chute import httpapi
from chute.auth.middleware import ContextMiddleware
from chute.auth.options import AuthSettings
from chute.compute import api
from chute.compute.cluster import wire
from chute.compute.cluster.internal import INTERNAL, require_service
from chute.compute.manager import ComputeManager
from chute.errors import BadComputeRequest


class Builds:
    def __init__(self, manager: ComputeManager, strategy: str) -> None:
        self.manager = manager
        self.strategy = strategy

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        require_service(req, self.strategy)
        body = httpapi.read_json(req)
        if not isinstance(body, dict):
            raise BadComputeRequest("The body must be {\"instance\": {...}}.")
        started = self.manager.accept_build(wire.load(body.get("instance")))
        httpapi.json_response(resp, {"started": started}, 202)


class InstanceAction:
    def __init__(self, manager: ComputeManager, strategy: str) -> None:
        self.manager = manager
        self.strategy = strategy

    def on_post(self, req: falcon.Request, resp: falcon.Response, instance_id: str) -> None:
        require_service(req, self.strategy)
        answer = self.manager.server_actions.perform(instance_id, httpapi.read_json(req))
        if answer is None:
            resp.status = falcon.HTTP_202
        else:
            httpapi.json_response(resp, answer)


class Instance:
    def __init__(self, manager: ComputeManager, strategy: str) -> None:
        self.manager = manager
        self.strategy = strategy

    def on_delete(self, req: falcon.Request, resp: falcon.Response, instance_id: str) -> None:
        require_service(req, self.strategy)
        self.manager.forget(instance_id)
        resp.status = falcon.HTTP_204


# Start pre-caching an image (the compute API's request id, None from an older caller).
PrecacheAccept = Callable[[str, str | None], object]


class Precache:
    def __init__(self, accept: PrecacheAccept, strategy: str) -> None:
        self.accept = accept
        self.strategy = strategy

    def on_post(self, req: falcon.Request, resp: falcon.Response, image_id: str) -> None:
        require_service(req, self.strategy)
        body = httpapi.read_json(req)
        request_id = body.get("request_id") if isinstance(body, dict) else None
        if body is not None and not isinstance(request_id, str):
            raise BadComputeRequest("The body must be {\"request_id\": STRING} or empty.")
        self.accept(image_id, request_id)
        resp.status = falcon.HTTP_202


def create_app(manager: ComputeManager, auth: AuthSettings, precache: PrecacheAccept
               ) -> falcon.App[falcon.Request, falcon.Response]:
    middleware: list[Any] = [httpapi.RequestIdMiddleware(), ContextMiddleware(auth)]
    app = falcon.App(middleware=middleware)
    app.req_options.strip_url_path_trailing_slash = True
    httpapi.install_error_handling(app, api.ERROR_STATUS, api.nova_renderer)
    httpapi.install_method_rules(app)
    app.add_route("/", api.Versions())
    app.add_route("/v2.1", api.Version())
    app.add_route(f"{INTERNAL}/builds", Builds(manager, auth.strategy))
    app.add_route(f"{INTERNAL}/instances/{{instance_id}}/action",
                  InstanceAction(manager, auth.strategy))
    app.add_route(f"{INTERNAL}/instances/{{instance_id}}", Instance(manager, auth.strategy))
    app.add_route(f"{INTERNAL}/images/{{image_id}}/precache",
                  Precache(precache, auth.strategy))
    return app
