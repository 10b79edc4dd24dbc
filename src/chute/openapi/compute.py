"""OpenAPI document of chute-compute: the Nova v2.1 servers/flavors subset chute implements.

The shapes documented are those of microversion 2.1 (no header); a request may ask for up to
2.81 with `OpenStack-API-Version: compute X` (compute/microversion.py), and the response then
follows Nova's changes (embedded flavor from 2.47, tags from 2.26, ...)."""

from __future__ import annotations

from typing import Any

_LINK = {"type": "object", "required": ["rel", "href"],
         "properties": {"rel": {"type": "string"}, "href": {"type": "string"}}}
_LINKS = {"type": "array", "items": _LINK}
_NULL_STR = {"type": ["string", "null"]}
_VERSION = {
    "type": "object", "required": ["id", "status", "version", "min_version", "links"],
    "properties": {"id": {"const": "v2.1"}, "status": {"type": "string"},
                   "version": {"type": "string"}, "min_version": {"type": "string"},
                   "updated": {"type": "string"}, "links": _LINKS,
                   "media-types": {"type": "array"}},
}
_REF = {"type": "object", "required": ["id", "links"],
        "properties": {"id": {"type": "string"}, "links": _LINKS}}

SCHEMAS: dict[str, Any] = {
    "Fault": {
        "description": "Nova's error body: one key naming the fault (itemNotFound, "
                       "badRequest, ...) holding the status code and a message.",
        "type": "object", "minProperties": 1, "maxProperties": 1,
        "propertyNames": {"pattern": "^[a-zA-Z]+$"},
        "additionalProperties": {
            "type": "object", "required": ["code", "message"], "additionalProperties": False,
            "properties": {"code": {"type": "integer", "minimum": 400, "maximum": 599},
                           "message": {"type": "string"}}},
    },
    "Versions": {"type": "object", "required": ["versions"],
                 "properties": {"versions": {"type": "array", "items": _VERSION}}},
    "Version": {"type": "object", "required": ["version"], "properties": {"version": _VERSION}},
    "FlavorSummary": {"type": "object", "required": ["id", "name", "links"],
                      "properties": {"id": {"type": "string"}, "name": {"type": "string"},
                                     "links": _LINKS}},
    "Flavor": {
        "type": "object", "required": ["id", "name", "links", "ram", "disk", "vcpus"],
        "properties": {"id": {"type": "string"}, "name": {"type": "string"}, "links": _LINKS,
                       "ram": {"type": "integer"}, "disk": {"type": "integer"},
                       "vcpus": {"type": "integer"}},
    },
    "FlavorAccess": {
        "type": "object", "required": ["flavor_access"],
        "properties": {"flavor_access": {"type": "array", "items": {
            "type": "object", "required": ["flavor_id", "tenant_id"],
            "properties": {"flavor_id": {"type": "string"}, "tenant_id": {"type": "string"}}}}},
    },
    "ServerSummary": {"type": "object", "required": ["id", "name", "links"],
                      "properties": {"id": {"type": "string"}, "name": {"type": "string"},
                                     "links": _LINKS}},
    "Server": {
        "type": "object",
        "required": ["id", "name", "links", "status", "OS-EXT-STS:vm_state",
                     "OS-EXT-STS:task_state", "OS-EXT-STS:power_state", "image", "flavor",
                     "created", "updated", "progress", "chute:image_transfer"],
        "properties": {
            "id": {"type": "string"}, "name": {"type": "string"}, "links": _LINKS,
            "status": {"enum": ["BUILD", "ACTIVE", "ERROR", "DELETED", "SHUTOFF", "REBOOT",
                                "HARD_REBOOT"]},
            "OS-EXT-STS:vm_state": {"type": "string"},
            "OS-EXT-STS:task_state": _NULL_STR,
            "OS-EXT-STS:power_state": {"type": "integer"},
            "image": _REF,
            "flavor": {"type": "object", "description": "A reference (id, links) before 2.47; "
                       "from 2.47 the flavor itself (vcpus, ram, disk, original_name, ...)"},
            "metadata": {"type": "object", "additionalProperties": {"type": "string"}},
            "addresses": {"$ref": "#/components/schemas/Addresses"},
            "key_name": _NULL_STR, "OS-EXT-AZ:availability_zone": {"type": "string"},
            "config_drive": {"type": "string"},
            "tags": {"type": "array", "items": {"type": "string"}},
            "created": {"type": "string"}, "updated": _NULL_STR,
            "OS-SRV-USG:launched_at": _NULL_STR,
            "progress": {"type": "integer", "minimum": 0, "maximum": 100},
            "fault": {"type": "object", "required": ["code", "message"],
                      "properties": {"code": {"type": "integer"},
                                     "message": {"type": "string"},
                                     "created": _NULL_STR}},
            "chute:image_transfer": {
                "type": ["object", "null"],
                "description": "How the image reached this host (method file|http|cache; "
                               "primitive: clone|copy_file_range|read_write for file, "
                               "extents when http fetched only the data ranges; bytes, "
                               "seconds)."},
        },
    },
    "ServerCreate": {
        "type": "object", "required": ["server"],
        "description": "Every field Nova accepts is honoured or refused with a 400 naming it "
                       "(compute/server_fields.py): specific networks, other security groups, "
                       "volumes, personality, scheduler hints are refused.",
        "properties": {"server": {
            "type": "object", "required": ["name", "imageRef", "flavorRef"],
            "properties": {"name": {"type": "string", "minLength": 1, "maxLength": 255},
                           "imageRef": {"type": "string"},
                           "flavorRef": {"type": "string"},
                           "key_name": {"type": "string"},
                           "user_data": {"type": "string", "maxLength": 65535,
                                         "description": "base64"},
                           "metadata": {"type": "object", "maxProperties": 128,
                                        "additionalProperties": {"type": "string"}},
                           "availability_zone": {"type": "string"},
                           "networks": {"description": "\"none\" or \"auto\" (2.37), or []"},
                           "config_drive": {"type": "boolean"},
                           "adminPass": {"type": "string"},
                           "min_count": {"type": "integer", "minimum": 1},
                           "max_count": {"type": "integer", "minimum": 1, "maximum": 100}}}},
    },
    "ServerUpdate": {
        "type": "object", "required": ["server"],
        "properties": {"server": {"type": "object", "properties": {
            "name": {"type": "string", "minLength": 1, "maxLength": 255},
            "description": _NULL_STR}}},
    },
    "Metadata": {"type": "object", "required": ["metadata"], "properties": {"metadata": {
        "type": "object", "additionalProperties": {"type": "string"}}}},
    "Meta": {"type": "object", "required": ["meta"], "properties": {"meta": {
        "type": "object", "additionalProperties": {"type": "string"}}}},
    "Tags": {"type": "object", "required": ["tags"],
             "properties": {"tags": {"type": "array", "items": {"type": "string"}}}},
    "Keypair": {
        "type": "object", "required": ["name", "public_key", "fingerprint"],
        "properties": {"name": {"type": "string"}, "public_key": {"type": "string"},
                       "fingerprint": {"type": "string"}, "type": {"type": "string"},
                       "user_id": {"type": "string"}, "private_key": {"type": "string"}}},
    "KeypairCreate": {
        "type": "object", "required": ["keypair"],
        "properties": {"keypair": {"type": "object", "required": ["name"], "properties": {
            "name": {"type": "string", "minLength": 1, "maxLength": 255},
            "public_key": {"type": "string", "description": "absent: a key is generated"},
            "type": {"enum": ["ssh"]}}}},
    },
    "InstanceAction": {
        "type": "object", "required": ["action", "instance_uuid", "request_id", "start_time"],
        "properties": {"action": {"type": "string"}, "instance_uuid": {"type": "string"},
                       "request_id": {"type": "string"}, "user_id": _NULL_STR,
                       "project_id": _NULL_STR, "start_time": {"type": "string"},
                       "message": _NULL_STR, "events": {"type": "array"}}},
    "Addresses": {
        "type": "object", "description": "By network name, the server's fixed addresses.",
        "additionalProperties": {"type": "array", "items": {
            "type": "object", "required": ["version", "addr"],
            "properties": {"version": {"enum": [4, 6]}, "addr": {"type": "string"},
                           "OS-EXT-IPS:type": {"enum": ["fixed", "floating"]},
                           "OS-EXT-IPS-MAC:mac_addr": {"type": "string"}}}}},
    "SecurityGroups": {
        "type": "object", "required": ["security_groups"],
        "description": "Always the one group `default` with no rules: chute-compute has no "
                       "firewall.",
        "properties": {"security_groups": {"type": "array", "items": {"type": "object"}}}},
    "AvailabilityZones": {
        "type": "object", "required": ["availabilityZoneInfo"],
        "properties": {"availabilityZoneInfo": {"type": "array", "items": {
            "type": "object", "required": ["zoneName", "zoneState"],
            "properties": {"zoneName": {"type": "string"}, "zoneState": {"type": "object"},
                           "hosts": {"type": ["object", "null"]}}}}}},
    "ExtraSpecs": {"type": "object", "required": ["extra_specs"],
                   "properties": {"extra_specs": {"type": "object"}}},
    "Limits": {"type": "object", "required": ["limits"], "properties": {"limits": {
        "type": "object", "required": ["rate", "absolute"],
        "properties": {"rate": {"type": "array"}, "absolute": {
            "type": "object", "additionalProperties": {"type": "integer"}}}}}},
    "QuotaSet": {"type": "object", "required": ["quota_set"], "properties": {"quota_set": {
        "type": "object", "required": ["instances", "cores", "ram"],
        "properties": {"id": {"type": "string"}},
        "additionalProperties": {"type": "integer"}}}},
    "QuotaSetDetail": {"type": "object", "required": ["quota_set"], "properties": {
        "quota_set": {"type": "object", "required": ["id", "instances", "cores", "ram"],
                      "properties": {"id": {"type": "string"}},
                      "additionalProperties": {
                          "type": "object", "required": ["limit", "in_use", "reserved"],
                          "properties": {"limit": {"type": "integer"},
                                         "in_use": {"type": "integer"},
                                         "reserved": {"type": "integer"}}}}}},
    "QuotaSetUpdate": {"type": "object", "required": ["quota_set"], "properties": {
        "quota_set": {"type": "object", "properties": {
            "instances": {"type": "integer", "minimum": -1},
            "cores": {"type": "integer", "minimum": -1},
            "ram": {"type": "integer", "minimum": -1}, "force": {"type": "boolean"}}}}},
    "ServerAction": {
        "description": "Exactly one action: os-stop and os-start take null, reboot a type "
                       "(SOFT or HARD, any case), os-getConsoleOutput an optional length "
                       "(the last N lines; -1 or null: all).",
        "type": "object", "minProperties": 1, "maxProperties": 1,
        "properties": {
            "os-stop": {"type": "null"}, "os-start": {"type": "null"},
            "reboot": {"type": "object", "required": ["type"],
                       "properties": {"type": {"enum": ["SOFT", "HARD", "Soft", "Hard",
                                                        "soft", "hard"]}}},
            "os-getConsoleOutput": {
                "type": "object", "additionalProperties": False,
                "properties": {"length": {"type": ["integer", "string", "null"],
                                          "pattern": "^-?[0-9]+$", "minimum": -1}}},
        },
    },
    "ConsoleOutput": {"type": "object", "required": ["output"],
                      "properties": {"output": {"type": "string"}}},
    "ServerCreated": {
        "type": "object", "required": ["server"],
        "properties": {"server": {"type": "object", "required": ["id", "links"],
                                  "properties": {"id": {"type": "string"}, "links": _LINKS}}},
    },
}


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def _op(op_id: str, summary: str, status: str, schema: dict[str, Any] | None,
        **extra: Any) -> dict[str, Any]:
    ok: dict[str, Any] = {"description": summary}
    if schema is not None:
        ok["content"] = _json(schema)
    return {"operationId": op_id, "summary": summary,
            "responses": {status: ok, "default": {"$ref": "#/components/responses/Fault"}},
            **extra}


def _list(key: str, item: str) -> dict[str, Any]:
    return {"type": "object", "required": [key],
            "properties": {key: {"type": "array", "items": _ref(item)}}}


def _one(key: str, item: str) -> dict[str, Any]:
    return {"type": "object", "required": [key], "properties": {key: _ref(item)}}


def _create_server() -> dict[str, Any]:
    op = _op("createServer", "Boot a server (built in the background)", "202",
             _ref("ServerCreated"),
             requestBody={"required": True, "content": _json(_ref("ServerCreate"))})
    op["responses"]["400"] = {
        "description": "badRequest, before anything is stored or fetched: a malformed body, "
                       "an unknown flavor, an image that does not exist or is not active, "
                       "or an image the flavor cannot hold (as Nova: \"Flavor's memory is too "
                       "small for requested image.\" when min_ram exceeds the flavor's RAM; "
                       "\"Flavor's disk is too small for requested image. ...\" when the "
                       "image's virtual size exceeds the root disk; \"Flavor's disk is "
                       "smaller than the minimum size specified in image metadata. ...\" when "
                       "min_disk does)",
        "content": _json(_ref("Fault"))}
    return op


def _add_tag() -> dict[str, Any]:
    op = _op("addServerTag", "Add a tag: 201, or 204 if present (2.26)", "201", None)
    op["responses"]["204"] = {"description": "The server already had the tag"}
    return op


def _server_action() -> dict[str, Any]:
    op = _op("serverAction", "Stop, start or reboot a server (202), or read its console (200)",
             "202", None,
             requestBody={"required": True, "content": _json(_ref("ServerAction"))})
    op["responses"]["200"] = {"description": "os-getConsoleOutput: the console's last lines",
                              "content": _json(_ref("ConsoleOutput"))}
    op["responses"]["400"] = {"description": "badRequest: a malformed body, more than one "
                                             "action, an unknown action (\"There is no such "
                                             "action: X\"), a bad reboot type or length",
                              "content": _json(_ref("Fault"))}
    op["responses"]["409"] = {"description": "conflictingRequest: the server's state does not "
                                             "allow the action (\"Cannot 'stop' instance U "
                                             "while it is in vm_state stopped\")",
                              "content": _json(_ref("Fault"))}
    return op


SERVER_ID = {"name": "server_id", "in": "path", "required": True, "schema": {"type": "string"}}
KEY = {"name": "key", "in": "path", "required": True, "schema": {"type": "string"}}
NETWORK = {"name": "network", "in": "path", "required": True, "schema": {"type": "string"},
           "description": "A network's name (label)"}
TAG = {"name": "tag", "in": "path", "required": True, "schema": {"type": "string"}}
PROJECT_ID = {"name": "project_id", "in": "path", "required": True,
              "schema": {"type": "string"}}
KEYPAIR = {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}
REQUEST_ID = {"name": "request_id", "in": "path", "required": True,
              "schema": {"type": "string"}}


def _query(*names: str) -> list[dict[str, Any]]:
    return [{"name": name, "in": "query", "required": False, "schema": {"type": "string"}}
            for name in names]


# Nova's list filters, sorting and paging (compute/server_query.py).
SERVER_QUERY = _query("name", "status", "image", "flavor", "changes-since", "limit", "marker",
                      "sort_key", "sort_dir", "tags", "tags-any", "not-tags", "not-tags-any")


def _body(schema: str) -> dict[str, Any]:
    return {"required": True, "content": _json(_ref(schema))}
FLAVOR_ID = {"name": "flavor_id", "in": "path", "required": True, "schema": {"type": "string"}}

DOCUMENT: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {"title": "chute-compute (Nova v2.1 servers/flavors subset)", "version": "2.1",
             "description": "Hypervisor agent compatible with the OpenStack Compute v2.1 API "
                            "for servers and flavors. Errors are Nova fault bodies."},
    "paths": {
        "/": {"get": _op("listVersions", "API versions (300 Multiple Choices)", "300",
                         _ref("Versions"))},
        "/openapi.json": {"get": _op("openapi", "This document", "200", {"type": "object"})},
        "/v2.1": {"get": _op("showVersion", "The v2.1 API version", "200", _ref("Version"))},
        "/v2.1/flavors": {"get": _op("listFlavors", "Flavors (is_public: true, false, none)",
                                     "200", _list("flavors", "FlavorSummary"),
                                     parameters=_query("is_public")),
                          "post": _op("createFlavor", "Admin: create a flavor (swap, ephemeral "
                                      "0; rxtx_factor 1.0)", "200", _one("flavor", "Flavor"),
                                      requestBody={"required": True, "content": _json(
                                          {"type": "object", "required": ["flavor"]})})},
        "/v2.1/flavors/detail": {"get": _op("listFlavorsDetail", "Flavors with details", "200",
                                            _list("flavors", "Flavor"))},
        "/v2.1/flavors/{flavor_id}": {
            "parameters": [FLAVOR_ID],
            "get": _op("showFlavor", "A flavor", "200", _one("flavor", "Flavor")),
            "delete": _op("deleteFlavor", "Admin: delete a flavor (not a built-in one)", "202",
                          None)},
        "/v2.1/flavors/{flavor_id}/os-flavor-access": {
            "parameters": [FLAVOR_ID],
            "get": _op("listFlavorAccess", "Admin: the projects of a private flavor", "200",
                       _ref("FlavorAccess"))},
        "/v2.1/flavors/{flavor_id}/action": {
            "parameters": [FLAVOR_ID],
            "post": _op("flavorAction", "Admin: addTenantAccess or removeTenantAccess", "200",
                        _ref("FlavorAccess"), requestBody={"required": True, "content": _json(
                            {"type": "object", "minProperties": 1, "maxProperties": 1})})},
        "/v2.1/servers": {
            "get": _op("listServers", "Servers", "200", _list("servers", "ServerSummary"),
                       parameters=SERVER_QUERY),
            "post": _create_server(),
        },
        "/v2.1/servers/detail": {"get": _op("listServersDetail", "Servers with details", "200",
                                            _list("servers", "Server"),
                                            parameters=SERVER_QUERY)},
        "/v2.1/servers/{server_id}": {
            "parameters": [SERVER_ID],
            "get": _op("showServer", "A server", "200", _one("server", "Server")),
            "put": _op("updateServer", "Rename (and, from 2.19, describe) a server", "200",
                       _one("server", "Server"), requestBody=_body("ServerUpdate")),
            "delete": _op("deleteServer", "Delete a server and its disk", "204", None),
        },
        "/v2.1/servers/{server_id}/metadata": {
            "parameters": [SERVER_ID],
            "get": _op("listServerMetadata", "A server's metadata", "200", _ref("Metadata")),
            "post": _op("updateServerMetadata", "Merge metadata items", "200",
                        _ref("Metadata"), requestBody=_body("Metadata")),
            "put": _op("replaceServerMetadata", "Replace all metadata", "200",
                       _ref("Metadata"), requestBody=_body("Metadata")),
        },
        "/v2.1/servers/{server_id}/metadata/{key}": {
            "parameters": [SERVER_ID, KEY],
            "get": _op("showServerMetadataItem", "One metadata item", "200", _ref("Meta")),
            "put": _op("setServerMetadataItem", "Set one metadata item", "200", _ref("Meta"),
                       requestBody=_body("Meta")),
            "delete": _op("deleteServerMetadataItem", "Delete one metadata item", "204",
                          None),
        },
        "/v2.1/servers/{server_id}/tags": {
            "parameters": [SERVER_ID],
            "get": _op("listServerTags", "A server's tags (2.26)", "200", _ref("Tags")),
            "put": _op("replaceServerTags", "Replace the tags (2.26)", "200", _ref("Tags"),
                       requestBody=_body("Tags")),
            "delete": _op("deleteServerTags", "Remove every tag (2.26)", "204", None),
        },
        "/v2.1/servers/{server_id}/tags/{tag}": {
            "parameters": [SERVER_ID, TAG],
            "get": _op("checkServerTag", "204 if the server has the tag (2.26)", "204", None),
            "put": _add_tag(),
            "delete": _op("deleteServerTag", "Remove a tag (2.26)", "204", None),
        },
        "/v2.1/servers/{server_id}/os-security-groups": {
            "parameters": [SERVER_ID],
            "get": _op("listServerSecurityGroups", "The server's groups: `default`", "200",
                       _ref("SecurityGroups")),
        },
        "/v2.1/servers/{server_id}/ips": {
            "parameters": [SERVER_ID],
            "get": _op("listServerIps", "The server's addresses by network", "200", {
                "type": "object", "required": ["addresses"],
                "properties": {"addresses": {"$ref": "#/components/schemas/Addresses"}}}),
        },
        "/v2.1/servers/{server_id}/ips/{network}": {
            "parameters": [SERVER_ID, NETWORK],
            "get": _op("showServerIpsOfNetwork", "The server's addresses on one network",
                       "200", {"$ref": "#/components/schemas/Addresses"}),
        },
        "/v2.1/servers/{server_id}/os-instance-actions": {
            "parameters": [SERVER_ID],
            "get": _op("listInstanceActions", "What happened to a server, newest first",
                       "200", _list("instanceActions", "InstanceAction")),
        },
        "/v2.1/servers/{server_id}/os-instance-actions/{request_id}": {
            "parameters": [SERVER_ID, REQUEST_ID],
            "get": _op("showInstanceAction", "One action with its event", "200",
                       _one("instanceAction", "InstanceAction")),
        },
        "/v2.1/os-keypairs": {
            "get": _op("listKeypairs", "The user's keypairs", "200", {
                "type": "object", "required": ["keypairs"], "properties": {"keypairs": {
                    "type": "array", "items": _one("keypair", "Keypair")}}},
                parameters=_query("limit", "marker", "user_id")),
            "post": _op("createKeypair", "Import a public key, or generate a keypair "
                        "(the private key is in this answer only); 201 from 2.2", "200",
                        _one("keypair", "Keypair"), requestBody=_body("KeypairCreate")),
        },
        "/v2.1/os-keypairs/{name}": {
            "parameters": [KEYPAIR],
            "get": _op("showKeypair", "A keypair", "200", _one("keypair", "Keypair")),
            "delete": _op("deleteKeypair", "Delete a keypair (202 at 2.1, 204 from 2.2)", "202",
                          None),
        },
        "/v2.1/os-availability-zone": {
            "get": _op("listAvailabilityZones", "This host's zone", "200",
                       _ref("AvailabilityZones"))},
        "/v2.1/os-availability-zone/detail": {
            "get": _op("listAvailabilityZonesDetail", "This host's zone and its host", "200",
                       _ref("AvailabilityZones"))},
        "/v2.1/flavors/{flavor_id}/os-extra_specs": {
            "parameters": [FLAVOR_ID],
            "get": _op("listFlavorExtraSpecs", "A flavor's extra specs (none)", "200",
                       _ref("ExtraSpecs"))},
        "/v2.1/flavors/{flavor_id}/os-extra_specs/{key}": {
            "parameters": [FLAVOR_ID, KEY],
            "get": _op("showFlavorExtraSpec", "One extra spec (always 404: none)", "200",
                       {"type": "object"})},
        "/v2.1/limits": {
            "get": _op("showLimits", "What chute enforces for the caller's project (-1: unlimited) "
                       "and what it uses",
                       "200", _ref("Limits"))},
        "/v2.1/os-quota-sets/{project_id}": {
            "parameters": [PROJECT_ID],
            "get": _op("showQuotaSet", "A project's quotas (project reader or admin)", "200",
                       _ref("QuotaSet")),
            "put": _op("updateQuotaSet", "Set a project's instances, cores, ram (admin; "
                       "below what it uses only with force)", "200", _ref("QuotaSet"),
                       requestBody=_body("QuotaSetUpdate")),
            "delete": _op("deleteQuotaSet", "Back to the defaults (admin)", "202", None)},
        "/v2.1/os-quota-sets/{project_id}/detail": {
            "parameters": [PROJECT_ID],
            "get": _op("showQuotaSetDetail", "A project's quotas with what it uses", "200",
                       _ref("QuotaSetDetail"))},
        "/v2.1/os-quota-sets/{project_id}/defaults": {
            "parameters": [PROJECT_ID],
            "get": _op("showQuotaSetDefaults", "The default quotas", "200",
                       _ref("QuotaSet"))},
        "/v2.1/servers/{server_id}/action": {"parameters": [SERVER_ID],
                                             "post": _server_action()},
    },
    "components": {
        "schemas": SCHEMAS,
        "responses": {"Fault": {"description": "A Nova fault",
                                "content": _json(_ref("Fault"))}},
    },
}
