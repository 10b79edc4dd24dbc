"""os-services (Nova): the compute service of each host, to list, enable, disable with a
reason, force down and delete. Admin-only by Nova's policy defaults
(`os_compute_api:os-services:*`).

Microversions as in Nova: `forced_down` is shown from 2.11 (and `force-down` accepted);
from 2.53 a service is named by its uuid (`PUT /os-services/{uuid}` with `status`,
`disabled_reason`, `forced_down`), before it by host in `PUT /os-services/{action}`
(`enable`, `disable`, `disable-log-reason`, `force-down`). `DELETE /os-services/{id}` takes
the uuid from 2.53, the integer id before; 204, or 409 while the host has servers.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

import falcon

from chute import httpapi
from chute.auth.middleware import context_of
from chute.auth.policy import Authorizer
from chute.compute import microversion
from chute.compute.microversion import APIVersion
from chute.compute.services import BINARY, Service, Services
from chute.errors import BadComputeRequest, ComputeNotFound

LOG = logging.getLogger(__name__)
RULE = "os_compute_api:os-services"
LEGACY_ACTIONS = ("enable", "disable", "disable-log-reason", "force-down")


def stamp(value: Any) -> str | None:
    return value.strftime("%Y-%m-%dT%H:%M:%S.000000") if value is not None else None


def view(service: Service, version: APIVersion) -> dict[str, Any]:
    state = service.state
    doc: dict[str, Any] = {
        "id": service.uuid if version.at_least("2.53") else service.id,
        "binary": BINARY, "host": service.host, "zone": state.availability_zone,
        "status": "enabled" if state.enabled else "disabled",
        "state": "up" if service.up else "down",
        "disabled_reason": state.disabled_reason, "updated_at": stamp(service.updated_at)}
    if version.at_least("2.11"):
        doc["forced_down"] = state.forced_down
    return doc


def authorize(policy: Authorizer, req: falcon.Request, action: str, rule: str = RULE) -> None:
    ctx = context_of(req)
    policy.authorize(f"{rule}:{action}", {"project_id": ctx.project_id or ""}, ctx)


def _check_uuid(service_id: str) -> None:
    try:
        uuid.UUID(service_id)
    except ValueError:
        raise BadComputeRequest(f"Invalid uuid {service_id}") from None


def _body(req: falcon.Request) -> dict[str, Any]:
    body = httpapi.read_json(req)
    if not isinstance(body, dict):
        raise BadComputeRequest("The request body must be a JSON object.")
    return body


class ServiceList:
    def __init__(self, services: Services, policy: Authorizer) -> None:
        self.services = services
        self.policy = policy

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        authorize(self.policy, req, "list")
        version = microversion.of(req)
        host, binary = req.get_param("host"), req.get_param("binary")
        found = [s for s in self.services.list()
                 if (host is None or s.host == host) and binary in (None, BINARY)]
        httpapi.json_response(resp, {"services": [view(s, version) for s in found]})


class ServiceItem:
    """PUT /os-services/{uuid} (2.53) or /os-services/{action} (before)."""

    def __init__(self, services: Services, policy: Authorizer) -> None:
        self.services = services
        self.policy = policy

    def on_put(self, req: falcon.Request, resp: falcon.Response, service_id: str) -> None:
        authorize(self.policy, req, "update")
        version = microversion.of(req)
        body = _body(req)
        if version.at_least("2.53"):
            service = self._update(service_id, body)
            httpapi.json_response(resp, {"service": view(service, version)})
        else:
            httpapi.json_response(resp, {"service": self._legacy(service_id, body, version)})

    def on_delete(self, req: falcon.Request, resp: falcon.Response, service_id: str) -> None:
        authorize(self.policy, req, "delete")
        if microversion.of(req).at_least("2.53"):
            _check_uuid(service_id)
            service = self.services.by_uuid(service_id)
        else:
            if not service_id.isdigit():
                raise BadComputeRequest("Invalid input received: id must be an integer")
            service = self.services.by_number(int(service_id))
        self.services.delete(service)
        LOG.info("Compute service of host %s deleted", service.host)
        resp.status = falcon.HTTP_204

    def _update(self, service_id: str, body: dict[str, Any]) -> Service:
        _check_uuid(service_id)
        unknown = set(body) - {"status", "disabled_reason", "forced_down"}
        if unknown:
            raise BadComputeRequest(f"Additional properties are not allowed "
                                    f"({', '.join(sorted(unknown))} unexpected).")
        status = body.get("status")
        if status is None and "forced_down" not in body:
            raise BadComputeRequest("At least one of status or forced_down must be specified.")
        if status not in (None, "enabled", "disabled"):
            raise BadComputeRequest(f"Invalid input for field/attribute status: {status!r} is "
                                    "not one of ['enabled', 'disabled'].")
        if "disabled_reason" in body and status != "disabled":
            raise BadComputeRequest("Specifying 'disabled_reason' with status "
                                    f"'{status or 'unset'}' is invalid.")
        host = self.services.by_uuid(service_id).host
        if status == "enabled":
            self.services.enable(host)
        elif status == "disabled":
            self.services.disable(host, body.get("disabled_reason"))
        if "forced_down" in body:
            self.services.force_down(host, body["forced_down"])
        return self.services.by_host(host)

    def _legacy(self, action: str, body: dict[str, Any], version: APIVersion) -> dict[str, Any]:
        if action not in LEGACY_ACTIONS or (action == "force-down"
                                            and not version.at_least("2.11")):
            raise ComputeNotFound(f"Unknown action {action}")
        host, binary = body.get("host"), body.get("binary")
        if not isinstance(host, str) or not isinstance(binary, str):
            raise BadComputeRequest("host and binary are required strings.")
        if binary != BINARY:
            raise ComputeNotFound(f"Service {binary} on host {host} could not be found.")
        answer: dict[str, Any] = {"host": host, "binary": binary}
        if action == "enable":
            self.services.enable(host)
            answer["status"] = "enabled"
        elif action == "force-down":
            answer["forced_down"] = self.services.force_down(
                host, body.get("forced_down")).state.forced_down
        else:
            reason = body.get("disabled_reason") if action == "disable-log-reason" else None
            if action == "disable-log-reason" and reason is None:
                raise BadComputeRequest("disabled_reason is required.")
            self.services.disable(host, reason)
            answer["status"] = "disabled"
            if reason is not None:
                answer["disabled_reason"] = reason
        return answer


class AvailabilityZones:
    """os-availability-zone of many hosts: the zones of the hosts' services (an aggregate's
    `availability_zone`, else the agent's own); a zone is available while one of its services
    is enabled, as Nova. `/detail` (admin, Nova's default) names each zone's hosts with their
    service's state."""

    def __init__(self, services: Services, policy: Authorizer, detail: bool) -> None:
        self.services = services
        self.policy = policy
        self.detail = detail

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        if self.detail:
            authorize(self.policy, req, "detail", "os_compute_api:os-availability-zone")
        found: dict[str, dict[str, Any]] = {}
        for service in self.services.list():
            name = service.state.availability_zone
            zone = found.setdefault(name, {"zoneName": name,
                                           "zoneState": {"available": False}, "hosts": None})
            zone["zoneState"]["available"] |= service.state.enabled
            if self.detail:
                zone["hosts"] = zone["hosts"] or {}
                zone["hosts"][service.host] = {BINARY: {
                    "available": service.up, "active": service.state.enabled,
                    "updated_at": stamp(service.updated_at)}}
        httpapi.json_response(resp, {"availabilityZoneInfo": [
            found[name] for name in sorted(found)]})


def add_routes(app: httpapi.App, services: Services, policy: Authorizer) -> None:
    app.add_route("/v2.1/os-services", ServiceList(services, policy))
    app.add_route("/v2.1/os-services/{service_id}", ServiceItem(services, policy))
    # Replaces the single host's zone view that compute/api.py routes for chute-compute.
    app.add_route("/v2.1/os-availability-zone",
                  AvailabilityZones(services, policy, detail=False))
    app.add_route("/v2.1/os-availability-zone/detail",
                  AvailabilityZones(services, policy, detail=True))
