"""os-hypervisors (Nova): each host's resources and usage, and (chute's addition, in show and
detail) the progress of the images it was asked to pre-cache. Admin-only by Nova's policy
defaults (`os_compute_api:os-hypervisors:*`).

Microversions as in Nova: from 2.28 `cpu_info` is an object (a JSON string before); from 2.53
hypervisors and their service are named by uuid and the list filters with
`hypervisor_hostname_pattern`; from 2.33 the list pages with `limit` and `marker`. The usage
fields Nova dropped in 2.88 are kept, the maximum being below it.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import falcon

from chute import httpapi
from chute.auth.policy import Authorizer
from chute.compute import microversion
from chute.compute.api_services import authorize, stamp
from chute.compute.microversion import APIVersion
from chute.compute.precache import Precache
from chute.compute.services import Service, Services
from chute.errors import BadComputeRequest, ComputeNotFound

RULE = "os_compute_api:os-hypervisors"
PRECACHE_KEY = "chute:image_precache"


def _id(service: Service, version: APIVersion) -> int | str:
    return service.uuid if version.at_least("2.53") else service.id


def summary(service: Service, version: APIVersion) -> dict[str, Any]:
    state = service.state
    return {"id": _id(service, version), "hypervisor_hostname": service.host,
            "state": "up" if service.up else "down",
            "status": "enabled" if state.enabled else "disabled"}


def detail(service: Service, version: APIVersion, precache: Precache) -> dict[str, Any]:
    state = service.state
    doc = summary(service, version)
    doc.update(
        vcpus=state.vcpus, vcpus_used=state.vcpus_used,
        memory_mb=state.memory_mb, memory_mb_used=state.memory_mb_used,
        free_ram_mb=state.memory_mb - state.memory_mb_used,
        local_gb=state.disk_gb, local_gb_used=state.disk_gb_used,
        free_disk_gb=state.disk_gb - state.disk_gb_used,
        disk_available_least=state.disk_gb - state.disk_gb_used,
        running_vms=state.running_instances, current_workload=0,
        hypervisor_type="chute", hypervisor_version=1,
        host_ip=urlsplit(state.agent_url).hostname or "",
        cpu_info={} if version.at_least("2.28") else "{}",
        service={"host": service.host, "id": _id(service, version),
                 "disabled_reason": state.disabled_reason})
    doc[PRECACHE_KEY] = [{"image_id": p.image_id, "status": p.status,
                          "requested_at": stamp(p.requested_at), "detail": p.detail}
                         for p in precache.progress(service.state)]
    return doc


class HypervisorList:
    def __init__(self, services: Services, precache: Precache, policy: Authorizer,
                 detailed: bool) -> None:
        self.services = services
        self.precache = precache
        self.policy = policy
        self.detailed = detailed

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        authorize(self.policy, req, "list-detail" if self.detailed else "list", RULE)
        version = microversion.of(req)
        found = self.services.list()
        pattern = req.get_param("hypervisor_hostname_pattern")
        if pattern is not None and version.at_least("2.53"):
            found = [s for s in found if pattern in s.host]
            if not found:
                raise ComputeNotFound(f"No hypervisor matching '{pattern}' could be found.")
        if version.at_least("2.33"):
            found = _page(req, found, version)
        docs = [detail(s, version, self.precache) if self.detailed else summary(s, version)
                for s in found]
        httpapi.json_response(resp, {"hypervisors": docs})


def _page(req: falcon.Request, found: list[Service], version: APIVersion) -> list[Service]:
    marker = req.get_param("marker")
    if marker is not None:
        ids = [str(_id(s, version)) for s in found]
        if marker not in ids:
            raise BadComputeRequest(f"marker [{marker}] not found")
        found = found[ids.index(marker) + 1:]
    limit = req.get_param("limit")
    if limit is not None:
        if not limit.isdigit():
            raise BadComputeRequest(f"Invalid input for query parameters limit: {limit!r} "
                                    "is not a non-negative integer.")
        found = found[:int(limit)]
    return found


class HypervisorItem:
    def __init__(self, services: Services, precache: Precache, policy: Authorizer) -> None:
        self.services = services
        self.precache = precache
        self.policy = policy

    def on_get(self, req: falcon.Request, resp: falcon.Response, hypervisor_id: str) -> None:
        authorize(self.policy, req, "show", RULE)
        version = microversion.of(req)
        service = self.services.by_id(hypervisor_id)
        httpapi.json_response(resp, {"hypervisor": detail(service, version, self.precache)})


class HypervisorUptime:
    """Nova answers with the host's `uptime` output; chute's agents do not report it, so the
    field says so and gives the last heartbeat instead (openstackclient's `hypervisor show`
    asks for it)."""

    def __init__(self, services: Services, policy: Authorizer) -> None:
        self.services = services
        self.policy = policy

    def on_get(self, req: falcon.Request, resp: falcon.Response, hypervisor_id: str) -> None:
        authorize(self.policy, req, "uptime", RULE)
        service = self.services.by_id(hypervisor_id)
        doc = summary(service, microversion.of(req))
        doc["uptime"] = f"not reported; last heartbeat {stamp(service.updated_at)}"
        httpapi.json_response(resp, {"hypervisor": doc})


class HypervisorStatistics:
    """Nova's sums over all hypervisors (deprecated by 2.88, served below it)."""

    def __init__(self, services: Services, policy: Authorizer) -> None:
        self.services = services
        self.policy = policy

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        authorize(self.policy, req, "statistics", RULE)
        states = [s.state for s in self.services.list()]
        totals = {
            "count": len(states), "vcpus": sum(s.vcpus for s in states),
            "vcpus_used": sum(s.vcpus_used for s in states),
            "memory_mb": sum(s.memory_mb for s in states),
            "memory_mb_used": sum(s.memory_mb_used for s in states),
            "local_gb": sum(s.disk_gb for s in states),
            "local_gb_used": sum(s.disk_gb_used for s in states),
            "running_vms": sum(s.running_instances for s in states), "current_workload": 0}
        totals.update(free_ram_mb=totals["memory_mb"] - totals["memory_mb_used"],
                      free_disk_gb=totals["local_gb"] - totals["local_gb_used"],
                      disk_available_least=totals["local_gb"] - totals["local_gb_used"])
        httpapi.json_response(resp, {"hypervisor_statistics": totals})


def add_routes(app: httpapi.App, services: Services, precache: Precache,
               policy: Authorizer) -> None:
    app.add_route("/v2.1/os-hypervisors", HypervisorList(services, precache, policy, False))
    app.add_route("/v2.1/os-hypervisors/detail",
                  HypervisorList(services, precache, policy, True))
    app.add_route("/v2.1/os-hypervisors/statistics", HypervisorStatistics(services, policy))
    app.add_route("/v2.1/os-hypervisors/{hypervisor_id}",
                  HypervisorItem(services, precache, policy))
    app.add_route("/v2.1/os-hypervisors/{hypervisor_id}/uptime",
                  HypervisorUptime(services, policy))
