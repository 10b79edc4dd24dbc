"""The compute API's internal endpoints, called by agents (service role when auth is on):

    PUT /internal/v1/hosts/{host}             registration + heartbeat + full state; the
                                              answer: {"builds": [instance...],
                                              "destroy": [instance id...], "precache":
                                              [{"image_id", "request_id"}...]} (the
                                              reconcile)
    PUT /internal/v1/hosts/{host}/states      {"states": [{"instance": {...}, "as_of"}...]}
                                              state changes (each instance once, its
                                              newest); answer {"placed": {id: bool}}
                                              (false: destroy your copy)
    PUT /internal/v1/instances/{id}/state     {"host": H, "instance": {...}, "as_of"} one
                                              state change (the form before the list);
                                              answer {"placed": bool}
    PUT /internal/v1/hosts/{host}/precache/{image_id}
                                              {"request_id", "status": cached|failed,
                                              "detail"}: a pre-cache's outcome; answer
                                              {"recorded": bool} (false: not the pending
                                              request any more)
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

import falcon

from chute import httpapi
from chute.compute.cluster import wire
from chute.compute.cluster.internal import INTERNAL, require_service
from chute.compute.cluster.registry import HostReport
from chute.compute.cluster.service import ClusterService
from chute.errors import BadComputeRequest


def _object(req: falcon.Request) -> dict[str, Any]:
    body = httpapi.read_json(req, limit=64 << 20)
    if not isinstance(body, dict):
        raise BadComputeRequest("The body must be a JSON object.")
    return body


def _field(body: dict[str, Any], name: str, kind: type | tuple[type, ...]) -> Any:
    value = body.get(name)
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        raise BadComputeRequest(f"Field {name!r} is missing or of the wrong type.")
    return value


def _as_of(body: dict[str, Any]) -> datetime:
    text = _field(body, "as_of", str)
    try:
        stamp = datetime.fromisoformat(text)
    except ValueError:
        raise BadComputeRequest(f"Field 'as_of' is not an ISO 8601 time: {text!r}") from None
    if stamp.tzinfo is None:
        raise BadComputeRequest("Field 'as_of' needs its UTC offset.")
    return stamp


def host_report(host: str, body: dict[str, Any]) -> HostReport:
    def ids(name: str) -> frozenset[str]:
        value = _field(body, name, list)
        if not all(isinstance(item, str) for item in value):
            raise BadComputeRequest(f"Field {name!r} must be a list of strings.")
        return frozenset(value)

    return HostReport(
        host=host, agent_url=_field(body, "agent_url", str),
        availability_zone=_field(body, "availability_zone", str),
        vcpus=_field(body, "vcpus", int), memory_mb=_field(body, "memory_mb", int),
        disk_gb=_field(body, "disk_gb", int),
        cpu_allocation_ratio=float(_field(body, "cpu_allocation_ratio", (int, float))),
        ram_allocation_ratio=float(_field(body, "ram_allocation_ratio", (int, float))),
        disk_allocation_ratio=float(_field(body, "disk_allocation_ratio", (int, float))),
        filesystem_ids=ids("filesystem_ids"), cached_images=ids("cached_images"))


class Precaching(Protocol):
    """compute/precache.Precache as the internal endpoints use it."""

    def outcome(self, host: str, image_id: str, request_id: str, status: str,
                detail: str | None) -> bool: ...

    def pending(self, host: str, cached: frozenset[str]) -> list[dict[str, str]]: ...


class HostResource:
    def __init__(self, service: ClusterService, strategy: str,
                 precache: Precaching | None = None) -> None:
        self.service = service
        self.strategy = strategy
        self.precache = precache

    def on_put(self, req: falcon.Request, resp: falcon.Response, host: str) -> None:
        require_service(req, self.strategy)
        body = _object(req)
        report = host_report(host, body)
        instances = [wire.load(doc) for doc in _field(body, "instances", list)]
        answer = self.service.heartbeat(report, instances, _as_of(body))
        pending = (self.precache.pending(host, report.cached_images)
                   if self.precache is not None else [])
        httpapi.json_response(resp, {"builds": [wire.dump(i) for i in answer["builds"]],
                                     "destroy": answer["destroy"], "precache": pending})


class InstanceStateResource:
    def __init__(self, service: ClusterService, strategy: str) -> None:
        self.service = service
        self.strategy = strategy

    def on_put(self, req: falcon.Request, resp: falcon.Response, instance_id: str) -> None:
        require_service(req, self.strategy)
        body = _object(req)
        inst = wire.load(body.get("instance"))
        if inst.id != instance_id:
            raise BadComputeRequest("The instance's id is not the one of the path.")
        placed = self.service.apply_report(_field(body, "host", str), inst, _as_of(body))
        httpapi.json_response(resp, {"placed": placed})


class HostStatesResource:
    def __init__(self, service: ClusterService, strategy: str) -> None:
        self.service = service
        self.strategy = strategy

    def on_put(self, req: falcon.Request, resp: falcon.Response, host: str) -> None:
        require_service(req, self.strategy)
        reports = []
        for item in _field(_object(req), "states", list):
            if not isinstance(item, dict):
                raise BadComputeRequest("Each of 'states' must be a JSON object.")
            reports.append((wire.load(item.get("instance")), _as_of(item)))
        placed = self.service.apply_reports(host, reports)
        httpapi.json_response(resp, {"placed": placed})


class PrecacheOutcomeResource:
    def __init__(self, outcomes: Precaching, strategy: str) -> None:
        self.outcomes = outcomes
        self.strategy = strategy

    def on_put(self, req: falcon.Request, resp: falcon.Response, host: str,
               image_id: str) -> None:
        require_service(req, self.strategy)
        body = _object(req)
        detail = body.get("detail")
        if detail is not None and not isinstance(detail, str):
            raise BadComputeRequest("Field 'detail' must be a string or null.")
        recorded = self.outcomes.outcome(host, image_id, _field(body, "request_id", str),
                                         _field(body, "status", str), detail)
        httpapi.json_response(resp, {"recorded": recorded})


def add_routes(app: httpapi.App, service: ClusterService, strategy: str,
               precache: Precaching | None = None) -> None:
    app.add_route(f"{INTERNAL}/hosts/{{host}}", HostResource(service, strategy, precache))
    if precache is not None:
        app.add_route(f"{INTERNAL}/hosts/{{host}}/precache/{{image_id}}",
                      PrecacheOutcomeResource(precache, strategy))
    app.add_route(f"{INTERNAL}/hosts/{{host}}/states", HostStatesResource(service, strategy))
    app.add_route(f"{INTERNAL}/instances/{{instance_id}}/state",
                  InstanceStateResource(service, strategy))
