"""What the host offers, in Nova's shapes: its availability zone (`os-availability-zone`, the
`/detail` form naming this host), flavor extra specs (none: the classic flavors have none),
and `/limits`, which say honestly what chute enforces: metadata items (128), keypairs (100)
and the caller's project's quotas of instances, cores and RAM with what its servers use
(compute/quotas.py); a caller with no project (noauth) is not limited (-1, Nova's
"unlimited") and sees what all servers use.
"""

from __future__ import annotations

import socket
from typing import Any

import falcon

from chute import httpapi
from chute.auth.middleware import context_of
from chute.compute import flavors, microversion
from chute.compute.instance import utcnow
from chute.compute.keypairs import KEY_PAIRS
from chute.compute.quotas import UNLIMITED
from chute.compute.server_fields import METADATA_ITEMS
from chute.compute.server_service import ServerService
from chute.errors import ComputeNotFound


class AvailabilityZones:
    def __init__(self, manager: ServerService, detail: bool) -> None:
        self.manager = manager
        self.detail = detail

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        zone: dict[str, Any] = {"zoneName": self.manager.settings.availability_zone,
                                "zoneState": {"available": True}, "hosts": None}
        if self.detail:
            stamp = utcnow().strftime("%Y-%m-%dT%H:%M:%S.000000")
            zone["hosts"] = {socket.gethostname(): {"nova-compute": {
                "available": True, "active": True, "updated_at": stamp}}}
        httpapi.json_response(resp, {"availabilityZoneInfo": [zone]})


class FlavorExtraSpecs:
    def on_get(self, req: falcon.Request, resp: falcon.Response, flavor_id: str) -> None:
        flavors.get(flavor_id)
        httpapi.json_response(resp, {"extra_specs": {}})


class FlavorExtraSpec:
    def on_get(self, req: falcon.Request, resp: falcon.Response, flavor_id: str,
               key: str) -> None:
        flavor = flavors.get(flavor_id)
        raise ComputeNotFound(f"Flavor {flavor.id} has no extra specs with key {key}.")


class Limits:
    def __init__(self, manager: ServerService) -> None:
        self.manager = manager

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        version = microversion.of(req)
        project_id = context_of(req).project_id
        if project_id is None:
            limits = dict.fromkeys(("instances", "cores", "ram"), UNLIMITED)
        else:
            limits = self.manager.quotas.limits(project_id)
        used = self.manager.quotas.usage(project_id)
        absolute: dict[str, int] = {
            "maxServerMeta": METADATA_ITEMS, "maxTotalKeypairs": KEY_PAIRS,
            "maxTotalInstances": limits["instances"], "maxTotalCores": limits["cores"],
            "maxTotalRAMSize": limits["ram"],
            "maxServerGroups": 0, "maxServerGroupMembers": 0,
            "totalInstancesUsed": used.instances, "totalCoresUsed": used.cores,
            "totalRAMUsed": used.ram, "totalServerGroupsUsed": 0,
        }
        if not version.at_least("2.39"):
            absolute["maxImageMeta"] = METADATA_ITEMS
        if not version.at_least("2.57"):
            absolute.update(maxPersonality=0, maxPersonalitySize=0)
        if not version.at_least("2.36"):
            absolute.update(maxSecurityGroups=1, maxSecurityGroupRules=0,
                            maxTotalFloatingIps=0, totalSecurityGroupsUsed=1,
                            totalFloatingIpsUsed=0)
        httpapi.json_response(resp, {"limits": {"rate": [], "absolute": absolute}})
