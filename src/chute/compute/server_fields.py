"""The fields of `POST /servers` and `PUT /servers/{id}`: each one Nova accepts is either read
into a BootRequest or refused with a 400 naming it; none is accepted and dropped.

Honoured: name, imageRef, flavorRef, key_name, user_data, metadata, availability_zone,
networks ("none"/"auto"/[]), config_drive, tags (2.52), description (2.19), min_count,
max_count, adminPass (written to the config drive, as Nova's meta_data.json does),
security_groups naming `default`, OS-DCF:diskConfig MANUAL, and a block_device_mapping_v2
that only restates the image boot. Refused, with why: specific networks or ports (chute has
one network per host), other security groups (no firewall), other block devices (no volumes),
personality (no file injection; gone from 2.57), accessIPv4/6, scheduler hints (no
scheduler), host/hypervisor_hostname, trusted_image_certificates, return_reservation_id.
The limits are Nova's: metadata 128 items (`[quota] metadata_items`) of keys 1-255 characters
and values up to 255, user_data 65535 bytes of base64, 50 tags of 1-60 characters.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass, field
from typing import Any

from chute.compute.microversion import APIVersion
from chute.errors import BadComputeRequest, ComputeQuotaExceeded

METADATA_ITEMS = 128  # Nova's [quota] metadata_items default: what chute enforces
MAX_USERDATA_SIZE = 65535  # nova/api/openstack/compute/servers.py, on the base64 text
MAX_TAGS = 50  # nova.objects.instance.MAX_TAG_COUNT
MAX_COUNT = 100  # chute's limit on servers per request (each one is a build thread's work)
_METADATA_KEY = re.compile(r"^[a-zA-Z0-9-_:. ]{1,255}$")

_REFUSED = {
    "personality": "chute-compute does not inject files into guests (personality); use "
                   "user_data",
    "accessIPv4": "chute-compute does not support accessIPv4",
    "accessIPv6": "chute-compute does not support accessIPv6",
    "block_device_mapping": "chute-compute has no volumes: block_device_mapping is not "
                            "supported",
    "return_reservation_id": "chute-compute does not support return_reservation_id",
    "trusted_image_certificates": "chute-compute does not verify image certificates "
                                  "(trusted_image_certificates)",
    "host": "chute-compute is one host and has no scheduler: host is not supported",
    "hypervisor_hostname": "chute-compute is one host and has no scheduler: "
                           "hypervisor_hostname is not supported",
}
# Fields that exist from a microversion on, or (personality) that are gone from one on.
_SINCE = {"description": "2.19", "tags": "2.52", "trusted_image_certificates": "2.63",
          "host": "2.74", "hypervisor_hostname": "2.74"}
_GONE = {"personality": "2.57"}
_HONOURED = {"name", "imageRef", "flavorRef", "key_name", "user_data", "metadata",
             "availability_zone", "networks", "config_drive", "tags", "description",
             "min_count", "max_count", "adminPass", "security_groups", "OS-DCF:diskConfig",
             "block_device_mapping_v2"}
_HINTS = ("os:scheduler_hints", "OS-SCH-HNT:scheduler_hints")


@dataclass
class BootRequest:
    """What a boot asked for, checked for shape; the manager checks it against the host
    (image, flavor, keypair, zone)."""

    name: object
    image_ref: object
    flavor_ref: object
    key_name: str | None = None
    user_data: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    availability_zone: str | None = None
    config_drive: bool = False
    tags: list[str] = field(default_factory=list)
    description: str | None = None
    admin_pass: str | None = None
    min_count: int = 1
    max_count: int = 1
    networks: str = "auto"  # auto: a port on this host's network; none: no NIC (2.37)


def _bad(field_name: str, problem: str) -> BadComputeRequest:
    return BadComputeRequest(f"Invalid input for field/attribute {field_name}: {problem}")


def parse_create(body: object, version: APIVersion) -> BootRequest:
    if not isinstance(body, dict) or not isinstance(body.get("server"), dict):
        raise BadComputeRequest("The request body must be {\"server\": {...}}.")
    for hint in _HINTS:
        if body.get(hint):
            raise BadComputeRequest(f"chute-compute is one host and has no scheduler: {hint} "
                                    "is not supported.")
    server: dict[str, Any] = body["server"]
    _check_known(server, version)
    if version.at_least("2.37") and "networks" not in server:
        raise _bad("server", "'networks' is a required property (from microversion 2.37: "
                             "\"none\" or \"auto\").")
    networks = _check_networks(server.get("networks"), version)
    _check_security_groups(server.get("security_groups"))
    _check_disk_config(server.get("OS-DCF:diskConfig"))
    _check_block_devices(server.get("block_device_mapping_v2"), server.get("imageRef"))
    min_count, max_count = _counts(server)
    return BootRequest(
        name=server.get("name"), image_ref=server.get("imageRef"),
        flavor_ref=server.get("flavorRef"),
        key_name=_optional_str(server, "key_name"),
        user_data=_user_data(server.get("user_data")),
        metadata=check_metadata(server.get("metadata", {})),
        availability_zone=_optional_str(server, "availability_zone"),
        config_drive=_boolean("config_drive", server.get("config_drive", False)),
        tags=check_tags(server.get("tags", [])),
        description=check_description(server.get("description")),
        admin_pass=_optional_str(server, "adminPass"),
        min_count=min_count, max_count=max_count, networks=networks)


def _check_known(server: dict[str, Any], version: APIVersion) -> None:
    for key in server:
        since, gone = _SINCE.get(key), _GONE.get(key)
        exists = ((since is None or version.at_least(since))
                  and (gone is None or not version.at_least(gone)))
        if (key not in _HONOURED and key not in _REFUSED) or not exists:
            raise _bad("server", f"Additional properties are not allowed ('{key}' was "
                                 f"unexpected at microversion {version}).")
    for key, why in _REFUSED.items():
        if key in server:
            raise BadComputeRequest(f"{why}.")


def _optional_str(server: dict[str, Any], key: str) -> str | None:
    value = server.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not 1 <= len(value) <= 255:
        raise _bad(key, "a string of 1 to 255 characters is required.")
    return value


def _boolean(key: str, value: object) -> bool:
    """Nova's boolean parameter type: JSON booleans and their usual spellings as strings."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "1", "yes", "on", "y", "t"):
        return True
    if isinstance(value, str) and value.lower() in ("false", "0", "no", "off", "n", "f", ""):
        return False
    raise _bad(key, f"{value!r} is not a boolean.")


def _user_data(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise _bad("user_data", "a base64 string is required.")
    if len(value) > MAX_USERDATA_SIZE:
        raise BadComputeRequest(f"User data too large. User data must be no larger than "
                                f"{MAX_USERDATA_SIZE} bytes once base64 encoded. Your data "
                                f"is {len(value)} bytes")
    try:
        base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise BadComputeRequest("User data needs to be valid base 64.") from None
    return value


def check_metadata(value: object, existing: int = 0) -> dict[str, str]:
    """Metadata items as Nova checks them; `existing` items count against the quota too."""
    if not isinstance(value, dict):
        raise _bad("metadata", "an object of string keys and values is required.")
    for key, item in value.items():
        if not _METADATA_KEY.match(key):
            raise _bad("metadata", f"key {key!r} must be 1 to 255 characters of letters, "
                                   "digits, space and -_:.")
        if not isinstance(item, str) or len(item) > 255:
            raise _bad("metadata", f"the value of {key!r} must be a string of at most 255 "
                                   "characters.")
    if existing + len(value) > METADATA_ITEMS:
        raise ComputeQuotaExceeded(f"Maximum number of metadata items exceeds "
                                   f"{METADATA_ITEMS}")
    return dict(value)


def check_tag(tag: object) -> str:
    if not isinstance(tag, str) or not 1 <= len(tag) <= 60 or "/" in tag or "," in tag:
        raise _bad("tags", f"{tag!r}: a tag is 1 to 60 characters, without '/' or ','.")
    return tag


def check_tags(value: object) -> list[str]:
    if not isinstance(value, list):
        raise _bad("tags", "a list of strings is required.")
    tags = list(dict.fromkeys(check_tag(tag) for tag in value))
    if len(tags) > MAX_TAGS:
        raise BadComputeRequest(f"The number of tags exceeded the per-server limit "
                                f"{MAX_TAGS}")
    return tags


def check_description(value: object) -> str | None:
    if value is not None and (not isinstance(value, str) or len(value) > 255):
        raise _bad("description", "a string of at most 255 characters or null is required.")
    return value


def _check_networks(value: object, version: APIVersion) -> str:
    """auto or none. Before 2.37 an absent or empty `networks` meant every network the
    project may use (here the host's one), as `auto` does from 2.37."""
    if value is None:
        return "auto"
    if isinstance(value, str):
        if value not in ("none", "auto") or not version.at_least("2.37"):
            raise _bad("networks", f"{value!r}: \"none\" or \"auto\" (from microversion "
                                   "2.37) or a list is required.")
        return value
    if not isinstance(value, list):
        raise _bad("networks", "\"none\", \"auto\" or a list is required.")
    if value:
        raise BadComputeRequest("chute-compute has one network per host: specific "
                                "networks, ports and fixed IPs are not supported; use "
                                "networks \"none\" or \"auto\".")
    return "auto"


def _check_security_groups(value: object) -> None:
    if value is None:
        return
    if not isinstance(value, list) or not all(isinstance(g, dict) for g in value):
        raise _bad("security_groups", "a list of {\"name\": ...} is required.")
    for group in value:
        if group.get("name") != "default":
            raise BadComputeRequest(f"chute-compute has no firewall: security group "
                                    f"{group.get('name')!r} is not supported; only default.")


def _check_disk_config(value: object) -> None:
    if value is not None and value != "MANUAL":
        raise BadComputeRequest(f"chute-compute does not resize the guest's partitions: "
                                f"OS-DCF:diskConfig {value!r} is not supported; only MANUAL.")


def _check_block_devices(value: object, image_ref: object) -> None:
    """Only the mapping that restates an image boot (what some clients always send)."""
    if value is None:
        return
    image_boot = (isinstance(value, list) and len(value) == 1 and isinstance(value[0], dict)
                  and value[0].get("source_type") == "image"
                  and value[0].get("destination_type", "local") == "local"
                  and str(value[0].get("boot_index")) == "0"
                  and value[0].get("uuid") == image_ref
                  and set(value[0]) <= {"source_type", "destination_type", "boot_index",
                                        "uuid", "delete_on_termination"})
    if not image_boot:
        raise BadComputeRequest("chute-compute has no volumes: block_device_mapping_v2 is "
                                "supported only as the image boot itself (one image to "
                                "local, boot_index 0, the imageRef).")


def _counts(server: dict[str, Any]) -> tuple[int, int]:
    def count(key: str, default: int) -> int:
        value = server.get(key, default)
        if isinstance(value, str) and value.isdigit():
            value = int(value)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise _bad(key, f"{value!r} must be an integer of at least 1.")
        return value

    min_count = count("min_count", 1)
    max_count = count("max_count", min_count)
    if min_count > max_count:
        raise BadComputeRequest("min_count must be <= max_count")
    if max_count > MAX_COUNT:
        raise BadComputeRequest(f"chute-compute boots at most {MAX_COUNT} servers per "
                                f"request; max_count is {max_count}.")
    return min_count, max_count


@dataclass
class ServerUpdate:
    """`PUT /servers/{id}`: a rename and, from 2.19, a description."""

    name: object = None
    description: str | None = None
    has_description: bool = False


def parse_update(body: object, version: APIVersion) -> ServerUpdate:
    if not isinstance(body, dict) or not isinstance(body.get("server"), dict):
        raise BadComputeRequest("The request body must be {\"server\": {...}}.")
    server: dict[str, Any] = body["server"]
    allowed = {"name", "description"} if version.at_least("2.19") else {"name"}
    for key in server:
        if key in ("accessIPv4", "accessIPv6", "OS-DCF:diskConfig"):
            raise BadComputeRequest(f"chute-compute does not support changing {key}.")
        if key not in allowed:
            raise _bad("server", f"Additional properties are not allowed ('{key}' was "
                                 f"unexpected at microversion {version}).")
    update = ServerUpdate(name=server.get("name"))
    if "description" in server:
        update.description = check_description(server["description"])
        update.has_description = True
    return update
