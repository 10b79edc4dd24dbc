"""Nova v2.1 JSON documents for servers, flavors and versions.

Kept apart from the handlers so the shapes (pinned by tests) live in one place. Links are built
from the request's base URL, as Nova does without a configured public endpoint.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from chute.compute.flavors import Flavor
from chute.compute.instance import ERROR, Instance

VERSION = {
    "id": "v2.1", "status": "CURRENT", "version": "2.1", "min_version": "2.1",
    "updated": "2013-07-23T11:33:21Z",
    "media-types": [{"base": "application/json",
                     "type": "application/vnd.openstack.compute+json;version=2.1"}],
}


def _ts(value: datetime | None) -> str | None:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ") if value is not None else None


def _links(base_url: str, kind: str, item_id: str) -> list[dict[str, str]]:
    return [{"rel": "self", "href": f"{base_url}/v2.1/{kind}/{item_id}"},
            {"rel": "bookmark", "href": f"{base_url}/{kind}/{item_id}"}]


def versions(base_url: str) -> dict[str, Any]:
    return {"versions": [{**VERSION, "links": [{"rel": "self", "href": f"{base_url}/v2.1/"}]}]}


def version(base_url: str) -> dict[str, Any]:
    return {"version": {**VERSION, "links": [{"rel": "self", "href": f"{base_url}/v2.1/"}]}}


def flavor_summary(base_url: str, flavor: Flavor) -> dict[str, Any]:
    return {"id": flavor.id, "name": flavor.name, "links": _links(base_url, "flavors", flavor.id)}


def flavor_detail(base_url: str, flavor: Flavor) -> dict[str, Any]:
    return {
        **flavor_summary(base_url, flavor),
        "ram": flavor.ram, "disk": flavor.disk, "vcpus": flavor.vcpus,
        "swap": "", "rxtx_factor": 1.0,
        "OS-FLV-EXT-DATA:ephemeral": 0, "OS-FLV-DISABLED:disabled": False,
        "os-flavor-access:is_public": True,
    }


def server_summary(base_url: str, inst: Instance) -> dict[str, Any]:
    return {"id": inst.id, "name": inst.name, "links": _links(base_url, "servers", inst.id)}


def server_created(base_url: str, inst: Instance) -> dict[str, Any]:
    """What POST /servers answers: Nova returns only the id, links and a few fields."""
    return {**server_summary(base_url, inst), "OS-DCF:diskConfig": "MANUAL",
            "security_groups": [{"name": "default"}]}


def server_detail(base_url: str, inst: Instance) -> dict[str, Any]:
    doc: dict[str, Any] = {
        **server_summary(base_url, inst),
        "status": inst.status,
        "OS-EXT-STS:vm_state": inst.vm_state,
        "OS-EXT-STS:task_state": inst.task_state,
        "OS-EXT-STS:power_state": inst.power_state,
        "image": {"id": inst.image_id,
                  "links": [{"rel": "bookmark", "href": f"{base_url}/images/{inst.image_id}"}]},
        "flavor": {"id": inst.flavor_id,
                   "links": [{"rel": "bookmark", "href": f"{base_url}/flavors/{inst.flavor_id}"}]},
        "created": _ts(inst.created),
        "updated": _ts(inst.updated),
        "OS-SRV-USG:launched_at": _ts(inst.launched_at),
        "OS-SRV-USG:terminated_at": None,
        "progress": 100 if inst.status == "ACTIVE" else 0,
        "addresses": {}, "metadata": {}, "hostId": "", "accessIPv4": "", "accessIPv6": "",
        "key_name": None, "config_drive": "", "OS-DCF:diskConfig": "MANUAL",
        "OS-EXT-AZ:availability_zone": "nova", "tenant_id": inst.project_id or "",
        "user_id": inst.user_id or "",
        "os-extended-volumes:volumes_attached": [],
        "chute:image_transfer": inst.transfer.as_dict() if inst.transfer else None,
    }
    if inst.vm_state == ERROR and inst.fault is not None:
        doc["fault"] = {"code": inst.fault.code, "message": inst.fault.message,
                        "created": _ts(inst.fault.created)}
    return doc
