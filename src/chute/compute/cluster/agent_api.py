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

import logging
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
from chute.errors import BadComputeRequest, ChuteError

LOG = logging.getLogger(__name__)


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


# (image id, the compute API's request id, "cached" | "failed", why it failed)
PrecacheReport = Callable[[str, str, str, str | None], None]


class Precache:
    def __init__(self, manager: ComputeManager, strategy: str,
                 report: PrecacheReport | None = None) -> None:
        self.manager = manager
        self.strategy = strategy
        self.report = report

    def on_post(self, req: falcon.Request, resp: falcon.Response, image_id: str) -> None:
        require_service(req, self.strategy)
        body = httpapi.read_json(req)
        request_id = body.get("request_id") if isinstance(body, dict) else None
        if body is not None and not isinstance(request_id, str):
            raise BadComputeRequest("The body must be {\"request_id\": STRING} or empty.")
        self.manager.submit(lambda: self._fetch(image_id, request_id))
        resp.status = falcon.HTTP_202

    def _fetch(self, image_id: str, request_id: str | None) -> None:
        """Fetch into `_base`, then tell the compute API how it went: a failure only in
        this host's log would leave the operator's view saying `requested` for ever."""
        try:
            fetched = self.manager.cache.fetch(self.manager.client.get(image_id))
        except Exception as exc:  # the worker's end: whatever failed is reported
            if not isinstance(exc, (ChuteError, OSError)):
                LOG.exception("Image %s could not be pre-cached", image_id)
            cause = getattr(exc, "message", None) or str(exc) or type(exc).__name__
            LOG.error("Image %s could not be pre-cached: %s", image_id, cause)
            self._report(image_id, request_id, "failed",
                         f"image {image_id} could not be fetched: {cause}")
            return
        LOG.info("Image %s pre-cached by %s", image_id, fetched.method)
        self._report(image_id, request_id, "cached", None)

    def _report(self, image_id: str, request_id: str | None, status: str,
                detail: str | None) -> None:
        if self.report is not None and request_id is not None:
            self.report(image_id, request_id, status, detail)


def create_app(manager: ComputeManager, auth: AuthSettings,
               precache_report: PrecacheReport | None = None
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
                  Precache(manager, auth.strategy, precache_report))
    return app
