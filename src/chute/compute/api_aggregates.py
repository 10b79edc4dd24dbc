"""os-aggregates (Nova): host aggregates, their hosts and metadata (`availability_zone` is the
zone of their hosts), and Nova 2.81's `POST /os-aggregates/{id}/images`, which makes every host
of the aggregate fetch images into its `_base` (compute/precache.py). Admin-only by Nova's
policy defaults (`os_compute_api:os-aggregates:*`, `compute:aggregates:images`).

Microversions as in Nova: `uuid` shown from 2.41; the images route exists from 2.81 (404
below it).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import falcon

from chute import httpapi
from chute.auth.middleware import context_of
from chute.auth.policy import Authorizer
from chute.compute import microversion
from chute.compute.aggregates import Aggregate, Aggregates
from chute.compute.api_services import authorize
from chute.compute.microversion import APIVersion
from chute.compute.precache import Precache
from chute.errors import BadComputeRequest, ComputeNotFound

RULE = "os_compute_api:os-aggregates"
IMAGES_RULE = "compute:aggregates"


def _time(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def view(aggregate: Aggregate, version: APIVersion, created: bool = False) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "id": aggregate.id, "name": aggregate.name,
        "availability_zone": aggregate.availability_zone,
        "created_at": _time(aggregate.created_at), "updated_at": _time(aggregate.updated_at),
        "deleted": False, "deleted_at": None}
    if not created:  # Nova's create answer has neither
        doc.update(hosts=list(aggregate.hosts), metadata=dict(aggregate.metadata))
    if version.at_least("2.41"):
        doc["uuid"] = aggregate.uuid
    return doc


def _object(body: object, key: str) -> dict[str, Any]:
    if not isinstance(body, dict) or not isinstance(body.get(key), dict):
        raise BadComputeRequest(f"The request body needs a '{key}' object.")
    found: dict[str, Any] = body[key]
    return found


class AggregateList:
    def __init__(self, aggregates: Aggregates, policy: Authorizer) -> None:
        self.aggregates = aggregates
        self.policy = policy

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        authorize(self.policy, req, "index", RULE)
        version = microversion.of(req)
        httpapi.json_response(resp, {"aggregates": [view(a, version)
                                                    for a in self.aggregates.list()]})

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        authorize(self.policy, req, "create", RULE)
        body = _object(httpapi.read_json(req), "aggregate")
        created = self.aggregates.create(body.get("name"), body.get("availability_zone"))
        httpapi.json_response(resp, {"aggregate": view(created, microversion.of(req), True)})


class AggregateItem:
    def __init__(self, aggregates: Aggregates, policy: Authorizer) -> None:
        self.aggregates = aggregates
        self.policy = policy

    def on_get(self, req: falcon.Request, resp: falcon.Response, aggregate_id: str) -> None:
        authorize(self.policy, req, "show", RULE)
        httpapi.json_response(resp, {"aggregate": view(self.aggregates.get(aggregate_id),
                                                       microversion.of(req))})

    def on_put(self, req: falcon.Request, resp: falcon.Response, aggregate_id: str) -> None:
        authorize(self.policy, req, "update", RULE)
        body = _object(httpapi.read_json(req), "aggregate")
        unknown = set(body) - {"name", "availability_zone"}
        if unknown or not body:
            raise BadComputeRequest("An aggregate update takes name and/or "
                                    "availability_zone only.")
        updated = self.aggregates.update(aggregate_id, body.get("name"),
                                         body.get("availability_zone"))
        httpapi.json_response(resp, {"aggregate": view(updated, microversion.of(req))})

    def on_delete(self, req: falcon.Request, resp: falcon.Response, aggregate_id: str) -> None:
        authorize(self.policy, req, "delete", RULE)
        self.aggregates.delete(aggregate_id)
        resp.status = falcon.HTTP_200  # Nova answers 200 without a body


class AggregateAction:
    """POST /os-aggregates/{id}/action: add_host, remove_host, set_metadata."""

    def __init__(self, aggregates: Aggregates, policy: Authorizer,
                 known_host: Callable[[str], bool]) -> None:
        self.aggregates = aggregates
        self.policy = policy
        self.known_host = known_host

    def on_post(self, req: falcon.Request, resp: falcon.Response, aggregate_id: str) -> None:
        body = httpapi.read_json(req)
        if not isinstance(body, dict) or len(body) != 1:
            raise BadComputeRequest("An aggregate action is one of add_host, remove_host, "
                                    "set_metadata.")
        action = next(iter(body))
        if action not in ("add_host", "remove_host", "set_metadata"):
            raise BadComputeRequest(f"Invalid aggregate action {action}.")
        authorize(self.policy, req, action, RULE)
        args = _object(body, action)
        if action == "add_host":
            host = args.get("host")
            known = isinstance(host, str) and self.known_host(host)
            found = self.aggregates.add_host(aggregate_id, host, known)
        elif action == "remove_host":
            found = self.aggregates.remove_host(aggregate_id, args.get("host"))
        else:
            found = self.aggregates.set_metadata(aggregate_id, args.get("metadata"))
        httpapi.json_response(resp, {"aggregate": view(found, microversion.of(req))})


class AggregateImages:
    """Nova 2.81: pre-cache images on the aggregate's hosts; 202, progress per host."""

    def __init__(self, precache: Precache, policy: Authorizer) -> None:
        self.precache = precache
        self.policy = policy

    def on_post(self, req: falcon.Request, resp: falcon.Response, aggregate_id: str) -> None:
        if not microversion.of(req).at_least("2.81"):
            raise ComputeNotFound("The resource could not be found.")
        authorize(self.policy, req, "images", IMAGES_RULE)
        body = httpapi.read_json(req)
        if not isinstance(body, dict) or set(body) != {"cache"}:
            raise BadComputeRequest("The request body must be {\"cache\": [{\"id\": IMAGE_ID}, "
                                    "...]}.")
        self.precache.request(aggregate_id, body["cache"], context_of(req).auth_token)
        resp.status = falcon.HTTP_202


def add_routes(app: httpapi.App, aggregates: Aggregates, precache: Precache,
               policy: Authorizer, known_host: Callable[[str], bool]) -> None:
    app.add_route("/v2.1/os-aggregates", AggregateList(aggregates, policy))
    app.add_route("/v2.1/os-aggregates/{aggregate_id}", AggregateItem(aggregates, policy))
    app.add_route("/v2.1/os-aggregates/{aggregate_id}/action",
                  AggregateAction(aggregates, policy, known_host))
    app.add_route("/v2.1/os-aggregates/{aggregate_id}/images",
                  AggregateImages(precache, policy))
