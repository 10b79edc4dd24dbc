"""Nova v2.1 JSON documents for servers, flavors and versions.

Kept apart from the handlers so the shapes (pinned by tests) live in one place. Links are built
from the request's base URL, as Nova does without a configured public endpoint.
"""

from __future__ import annotations

import re
import socket
from datetime import datetime
from typing import Any

from chute.compute import flavors
from chute.compute.flavors import Flavor
from chute.compute.instance import ERROR, Instance
from chute.compute.microversion import MAX_VERSION, MIN_VERSION, APIVersion
from chute.errors import FlavorNotFound

VERSION = {
    "id": "v2.1", "status": "CURRENT", "version": str(MAX_VERSION),
    "min_version": str(MIN_VERSION),
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


def _swap(version: APIVersion) -> int | str:
    # 2.75: a flavor without swap says 0 instead of "".
    return 0 if version.at_least("2.75") else ""


def flavor_detail(base_url: str, flavor: Flavor,
                  version: APIVersion = MIN_VERSION) -> dict[str, Any]:
    doc: dict[str, Any] = {
        **flavor_summary(base_url, flavor),
        "ram": flavor.ram, "disk": flavor.disk, "vcpus": flavor.vcpus,
        "swap": _swap(version), "rxtx_factor": 1.0,
        "OS-FLV-EXT-DATA:ephemeral": 0, "OS-FLV-DISABLED:disabled": False,
        "os-flavor-access:is_public": flavor.is_public,
    }
    if version.at_least("2.55"):
        doc["description"] = flavor.description
    if version.at_least("2.61"):
        doc["extra_specs"] = {}
    return doc


def _embedded_flavor(base_url: str, flavor_id: str, version: APIVersion) -> dict[str, Any]:
    """2.47: the server embeds what its flavor was, not a link to it."""
    ref = {"id": flavor_id,
           "links": [{"rel": "bookmark", "href": f"{base_url}/flavors/{flavor_id}"}]}
    if not version.at_least("2.47"):
        return ref
    try:
        flavor = flavors.get(flavor_id)
    except FlavorNotFound:
        return ref
    return {"vcpus": flavor.vcpus, "ram": flavor.ram, "disk": flavor.disk, "ephemeral": 0,
            "swap": 0, "original_name": flavor.name, "extra_specs": {}}


def server_summary(base_url: str, inst: Instance) -> dict[str, Any]:
    return {"id": inst.id, "name": inst.name, "links": _links(base_url, "servers", inst.id)}


def server_created(base_url: str, inst: Instance) -> dict[str, Any]:
    """What POST /servers answers: Nova returns only the id, links and a few fields."""
    doc = {**server_summary(base_url, inst), "OS-DCF:diskConfig": "MANUAL"}
    if inst.admin_pass is not None:
        doc["adminPass"] = inst.admin_pass
    return doc


def server_detail(base_url: str, inst: Instance, version: APIVersion = MIN_VERSION,
                  admin: bool = False) -> dict[str, Any]:
    doc: dict[str, Any] = {
        **server_summary(base_url, inst),
        "status": inst.status,
        "OS-EXT-STS:vm_state": inst.vm_state,
        "OS-EXT-STS:task_state": inst.task_state,
        "OS-EXT-STS:power_state": inst.power_state,
        "image": {"id": inst.image_id,
                  "links": [{"rel": "bookmark", "href": f"{base_url}/images/{inst.image_id}"}]},
        "flavor": _embedded_flavor(base_url, inst.flavor_id, version),
        "created": _ts(inst.created),
        "updated": _ts(inst.updated),
        "OS-SRV-USG:launched_at": _ts(inst.launched_at),
        "OS-SRV-USG:terminated_at": None,
        "progress": 100 if inst.status == "ACTIVE" else 0,
        "addresses": addresses(inst), "metadata": dict(inst.metadata), "hostId": "",
        "accessIPv4": "", "accessIPv6": "", "key_name": inst.key_name,
        "config_drive": "True" if inst.config_drive else "", "OS-DCF:diskConfig": "MANUAL",
        "OS-EXT-AZ:availability_zone": inst.availability_zone or "",
        "tenant_id": inst.project_id or "", "user_id": inst.user_id or "",
        "os-extended-volumes:volumes_attached": [],
        "chute:image_transfer": inst.transfer.as_dict() if inst.transfer else None,
    }
    doc.update(_versioned_server_fields(inst, version))
    if admin:
        doc.update(_host_fields(inst, version))
    if inst.vm_state == ERROR and inst.fault is not None:
        doc["fault"] = {"code": inst.fault.code, "message": inst.fault.message,
                        "created": _ts(inst.fault.created)}
    return doc


def addresses(inst: Instance, extended: bool = True) -> dict[str, list[dict[str, Any]]]:
    """Nova's `addresses`: by network name, the fixed address (and, in a server document,
    its type and MAC; `/servers/{id}/ips` shows only version and address) of each port."""
    port = inst.port
    if port is None:
        return {}
    found: dict[str, Any] = {"version": 4, "addr": port.address}
    if extended:
        found.update({"OS-EXT-IPS:type": "fixed", "OS-EXT-IPS-MAC:mac_addr": port.mac})
    return {port.network: [found]}


def _hostname(name: str, server_id: str) -> str:
    """Nova's sanitize_hostname: what a guest would be called on the network."""
    text = re.sub(r"[ _]", "-", name.lower())
    text = re.sub(r"[^a-z0-9.-]", "", text).strip(".-")[:63]
    return text or f"server-{server_id}"


def _host_fields(inst: Instance, version: APIVersion) -> dict[str, Any]:
    """Nova's admin-only OS-EXT-SRV-ATTR fields, for what is true on this host: the host and
    hypervisor are this machine (one agent, no scheduler); the instance name is the virt
    guest's, which chute names by the server id (`virsh list` shows it). 2.3 adds the guest's
    hostname, user data and kernel/ramdisk ids (none: chute boots whole-disk images); it
    leaves out reservation_id, launch_index and root_device_name, which chute does not record
    (a client reads them as absent, not as a made-up value)."""
    # Standalone, this machine; behind chute-compute-api, the host it placed the server on
    # (None until then, as Nova), which sets host_status.
    host = socket.gethostname() if inst.host_status is None else inst.host
    doc: dict[str, Any] = {"OS-EXT-SRV-ATTR:host": host,
                           "OS-EXT-SRV-ATTR:instance_name": inst.id,
                           "OS-EXT-SRV-ATTR:hypervisor_hostname": host}
    if inst.host_status is not None and version.at_least("2.16"):
        doc["host_status"] = inst.host_status  # Nova's default policy: admins only
    if version.at_least("2.3"):
        doc.update({"OS-EXT-SRV-ATTR:hostname": _hostname(inst.name, inst.id),
                    "OS-EXT-SRV-ATTR:kernel_id": "", "OS-EXT-SRV-ATTR:ramdisk_id": "",
                    "OS-EXT-SRV-ATTR:user_data": inst.user_data})
    return doc


def _versioned_server_fields(inst: Instance, version: APIVersion) -> dict[str, Any]:
    """The server fields Nova added by microversion, for what chute serves."""
    doc: dict[str, Any] = {}
    if version.at_least("2.9"):
        doc["locked"] = False
    if version.at_least("2.19"):
        doc["description"] = inst.description
    if version.at_least("2.26"):
        doc["tags"] = list(inst.tags)
    if version.at_least("2.63"):
        doc["trusted_image_certificates"] = None
    if version.at_least("2.71"):
        doc["server_groups"] = []
    if version.at_least("2.73"):
        doc["locked_reason"] = None
    return doc
