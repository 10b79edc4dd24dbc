"""OpenAPI document of chute-compute: the Nova v2.1 servers/flavors subset chute implements."""

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
            "image": _REF, "flavor": _REF,
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
        "properties": {"server": {
            "type": "object", "required": ["name", "imageRef", "flavorRef"],
            "properties": {"name": {"type": "string", "minLength": 1, "maxLength": 255},
                           "imageRef": {"type": "string"},
                           "flavorRef": {"type": "string"}}}},
    },
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
        "/v2.1/flavors": {"get": _op("listFlavors", "Flavors", "200",
                                     _list("flavors", "FlavorSummary"))},
        "/v2.1/flavors/detail": {"get": _op("listFlavorsDetail", "Flavors with details", "200",
                                            _list("flavors", "Flavor"))},
        "/v2.1/flavors/{flavor_id}": {
            "parameters": [FLAVOR_ID],
            "get": _op("showFlavor", "A flavor", "200", _one("flavor", "Flavor"))},
        "/v2.1/servers": {
            "get": _op("listServers", "Servers", "200", _list("servers", "ServerSummary")),
            "post": _create_server(),
        },
        "/v2.1/servers/detail": {"get": _op("listServersDetail", "Servers with details", "200",
                                            _list("servers", "Server"))},
        "/v2.1/servers/{server_id}": {
            "parameters": [SERVER_ID],
            "get": _op("showServer", "A server", "200", _one("server", "Server")),
            "delete": _op("deleteServer", "Delete a server and its disk", "204", None),
        },
        "/v2.1/servers/{server_id}/action": {"parameters": [SERVER_ID],
                                             "post": _server_action()},
    },
    "components": {
        "schemas": SCHEMAS,
        "responses": {"Fault": {"description": "A Nova fault",
                                "content": _json(_ref("Fault"))}},
    },
}
