"""OpenAPI document of chute-api: the Glance v2 images API subset chute implements."""

from __future__ import annotations

from typing import Any

_NULL_STR = {"type": ["string", "null"]}
_NULL_INT = {"type": ["integer", "null"]}
_BLAKE3_BLOCKS = {
    "type": "string", "pattern": "^[0-9a-f]{64}$", "readOnly": True,
    "description": (
        "chute's digest of the image data, recorded at upload and checked by compute hosts "
        "before they use a copy; absent on images uploaded before it existed. Definition "
        "(recompute it with any BLAKE3): split the data into 4 MiB blocks (4194304 bytes; "
        "the last may be shorter; empty data has none); d_i = BLAKE3(block i), 32 bytes; "
        "the value is the lower-case hex of BLAKE3(b\"chute-blake3-blocks-v1\" + "
        "u64le(4194304) + u64le(size in bytes) + d_0 + d_1 + ...). Blocks let a reader "
        "skip holes (an all-zero block has a constant d_i) and hash on several cores."),
}
_LINK = {"type": "object", "required": ["rel", "href"],
         "properties": {"rel": {"type": "string"}, "href": {"type": "string"}}}

SCHEMAS: dict[str, Any] = {
    "Error": {
        "description": "Glance's WebOb error body (sent when the client accepts JSON).",
        "type": "object", "required": ["message", "code", "title"],
        "properties": {"message": {"type": "string"},
                       "code": {"type": "string", "pattern": "^[1-5][0-9][0-9] "},
                       "title": {"type": "string"}},
        "additionalProperties": False,
    },
    "Versions": {
        "type": "object", "required": ["versions"], "additionalProperties": False,
        "properties": {"versions": {"type": "array", "items": {
            "type": "object", "required": ["id", "status", "links"],
            "properties": {"id": {"type": "string"}, "status": {"type": "string"},
                           "links": {"type": "array", "items": _LINK}}}}},
    },
    "Location": {
        "type": "object", "required": ["url", "metadata"],
        "properties": {"url": {"type": "string"}, "metadata": {"type": "object"}},
    },
    "Image": {
        "type": "object",
        "required": ["id", "name", "status", "visibility", "protected", "os_hidden", "checksum",
                     "size", "virtual_size", "min_disk", "min_ram", "disk_format",
                     "container_format", "owner", "os_hash_algo", "os_hash_value",
                     "created_at", "updated_at", "tags", "self", "file", "schema"],
        "properties": {
            "id": {"type": "string"}, "name": _NULL_STR,
            "status": {"enum": ["queued", "saving", "active", "killed", "deleted",
                                "pending_delete", "deactivated", "uploading", "importing"]},
            "visibility": {"enum": ["public", "private", "shared", "community"]},
            "protected": {"type": "boolean"}, "os_hidden": {"type": "boolean"},
            "checksum": _NULL_STR, "size": _NULL_INT, "virtual_size": _NULL_INT,
            "min_disk": {"type": "integer"}, "min_ram": {"type": "integer"},
            "disk_format": _NULL_STR, "container_format": _NULL_STR, "owner": _NULL_STR,
            "os_hash_algo": _NULL_STR, "os_hash_value": _NULL_STR,
            "os_glance_blake3_blocks": _BLAKE3_BLOCKS,
            "created_at": {"type": "string"}, "updated_at": {"type": "string"},
            "tags": {"type": "array", "items": {"type": "string"}},
            "self": {"type": "string"}, "file": {"type": "string"},
            "schema": {"type": "string"}, "direct_url": {"type": "string"},
            "locations": {"type": "array", "items": {"$ref": "#/components/schemas/Location"}},
        },
        "additionalProperties": {"type": "string"},
    },
    "StoreList": {
        "type": "object", "required": ["stores"],
        "properties": {"stores": {"type": "array", "items": {
            "type": "object", "required": ["id"],
            "properties": {"id": {"type": "string"}, "description": {"type": "string"},
                           "default": {"const": "true"}, "type": {"type": "string"},
                           "properties": {"type": "object"}, "weight": {"type": "integer"}}}}},
    },
    "ImageList": {
        "type": "object", "required": ["images", "first", "schema"],
        "additionalProperties": False,
        "properties": {"images": {"type": "array",
                                  "items": {"$ref": "#/components/schemas/Image"}},
                       "first": {"type": "string"}, "next": {"type": "string"},
                       "schema": {"type": "string"}},
    },
    "ImageCreate": {
        "type": "object",
        "properties": {
            "id": {"type": "string", "format": "uuid"},
            "name": _NULL_STR,
            "visibility": {"enum": ["public", "private", "shared", "community"]},
            "protected": {"type": "boolean"}, "os_hidden": {"type": "boolean"},
            "min_disk": {"type": "integer"}, "min_ram": {"type": "integer"},
            "disk_format": {"enum": [None, "ami", "ari", "aki", "vhd", "vhdx", "vmdk", "raw",
                                     "qcow2", "vdi", "iso", "ploop"]},
            "container_format": {"enum": [None, "ami", "ari", "aki", "bare", "ovf", "ova",
                                          "docker", "compressed"]},
            "owner": _NULL_STR,
            "tags": {"type": "array", "items": {"type": "string", "maxLength": 255}},
        },
        "additionalProperties": {"type": "string"},
    },
    "PatchOps": {
        "type": "array",
        "items": {"type": "object", "required": ["op", "path"],
                  "properties": {"op": {"enum": ["add", "replace", "remove"]},
                                 "path": {"type": "string"}, "value": {}}},
    },
    "JsonSchema": {"type": "object", "required": ["name", "properties"]},
    "Member": {
        "type": "object", "additionalProperties": False,
        "required": ["created_at", "image_id", "member_id", "schema", "status", "updated_at"],
        "properties": {"created_at": {"type": "string"}, "image_id": {"type": "string"},
                       "member_id": {"type": "string"}, "schema": {"type": "string"},
                       "status": {"enum": ["pending", "accepted", "rejected"]},
                       "updated_at": {"type": "string"}},
    },
    "MemberList": {
        "type": "object", "required": ["members", "schema"], "additionalProperties": False,
        "properties": {"members": {"type": "array",
                                   "items": {"$ref": "#/components/schemas/Member"}},
                       "schema": {"type": "string"}},
    },
    "Task": {
        "description": "An import, as Glance's `api_image_import` task (timestamps without a "
                       "zone, as Glance's); listed until 48 hours after it ended.",
        "type": "object", "additionalProperties": False,
        "required": ["id", "type", "status", "owner", "expires_at", "created_at", "updated_at",
                     "deleted_at", "deleted", "image_id", "request_id", "user_id", "input",
                     "result", "message"],
        "properties": {
            "id": {"type": "string"}, "type": {"enum": ["api_image_import"]},
            "status": {"enum": ["pending", "processing", "success", "failure"]},
            "owner": _NULL_STR, "expires_at": _NULL_STR, "created_at": {"type": "string"},
            "updated_at": {"type": "string"}, "deleted_at": {"type": "null"},
            "deleted": {"type": "boolean"}, "image_id": {"type": "string"},
            "request_id": _NULL_STR, "user_id": _NULL_STR,
            "input": {"type": "object", "description": "image_id, import_req (the request's "
                                                       "body), backend"},
            "result": {"type": ["object", "null"], "description": "{image_id} on success"},
            "message": {"type": "string", "description": "why it failed"},
        },
    },
    "TaskList": {
        "type": "object", "required": ["tasks"], "additionalProperties": False,
        "properties": {"tasks": {"type": "array",
                                 "items": {"$ref": "#/components/schemas/Task"}}},
    },
    "Extents": {
        "description": "Sorted, disjoint byte ranges holding the image's data within size; "
                       "holes shorter than 64 KiB are merged into their neighbours, and past "
                       "10,000 ranges one range covers the whole image.",
        "type": "object", "required": ["size", "extents"], "additionalProperties": False,
        "properties": {
            "size": {"type": "integer", "minimum": 0},
            "extents": {"type": "array", "maxItems": 10000, "items": {
                "type": "object", "required": ["offset", "length"],
                "additionalProperties": False,
                "properties": {"offset": {"type": "integer", "minimum": 0},
                               "length": {"type": "integer", "minimum": 1}}}},
        },
    },
}


def _json(ref: str) -> dict[str, Any]:
    return {"application/json": {"schema": {"$ref": f"#/components/schemas/{ref}"}}}


def _ok(description: str, ref: str | None = None) -> dict[str, Any]:
    response: dict[str, Any] = {"description": description}
    if ref:
        response["content"] = _json(ref)
    return response


ERROR = {"$ref": "#/components/responses/Error"}
IMAGE_ID = {"name": "image_id", "in": "path", "required": True, "schema": {"type": "string"}}
TAG = {"name": "tag", "in": "path", "required": True, "schema": {"type": "string"}}
MEMBER_ID = {"name": "member_id", "in": "path", "required": True, "schema": {"type": "string"}}
_QUERY = [("limit", {"type": "integer", "minimum": 0}), ("marker", {"type": "string"}),
          ("name", {"type": "string"}), ("status", {"type": "string"}),
          ("visibility", {"type": "string"}), ("owner", {"type": "string"}),
          ("tag", {"type": "string"}), ("os_hidden", {"type": "boolean"}),
          ("disk_format", {"type": "string"}), ("container_format", {"type": "string"}),
          ("size_min", {"type": "integer"}), ("size_max", {"type": "integer"}),
          ("sort_key", {"type": "string"}), ("sort_dir", {"enum": ["asc", "desc"]}),
          ("sort", {"type": "string"}), ("created_at", {"type": "string"}),
          ("updated_at", {"type": "string"})]


def _op(op_id: str, summary: str, responses: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"operationId": op_id, "summary": summary,
            "responses": {**responses, "default": ERROR}, **extra}


DOCUMENT: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {"title": "chute-api (Glance v2 images API subset)", "version": "2.5",
             "description": "Image registry compatible with OpenStack Glance v2. Error bodies "
                            "are JSON when the client sends Accept: application/json, else "
                            "HTML as Glance's WebOb renders them."},
    "paths": {
        "/": {"get": _op("listVersionsRoot", "API versions (300 Multiple Choices)",
                         {"300": _ok("Versions", "Versions")})},
        "/versions": {"get": _op("listVersions", "API versions", {"200": _ok("Versions",
                                                                              "Versions")})},
        "/openapi.json": {"get": _op("openapi", "This document",
                                     {"200": {"description": "OpenAPI document",
                                              "content": {"application/json": {
                                                  "schema": {"type": "object"}}}}})},
        "/v2/schemas/image": {"get": _op("imageSchema", "JSON schema of an image",
                                         {"200": _ok("Schema", "JsonSchema")})},
        "/v2/schemas/images": {"get": _op("imagesSchema", "JSON schema of an image list",
                                          {"200": _ok("Schema", "JsonSchema")})},
        "/v2/schemas/member": {"get": _op("memberSchema", "JSON schema of an image member",
                                          {"200": _ok("Schema", "JsonSchema")})},
        "/v2/schemas/members": {"get": _op("membersSchema", "JSON schema of a member list",
                                           {"200": _ok("Schema", "JsonSchema")})},
        "/v2/images": {
            "get": _op("listImages", "List images (paged, filtered, sorted)",
                       {"200": _ok("A page of images", "ImageList")},
                       parameters=[{"name": n, "in": "query", "required": False, "schema": s}
                                   for n, s in _QUERY]),
            "post": _op("createImage", "Create an image record (queued)",
                        {"201": _ok("Created", "Image")},
                        requestBody={"required": True, "content": _json("ImageCreate")}),
        },
        "/v2/images/{image_id}": {
            "parameters": [IMAGE_ID],
            "get": _op("showImage", "Show an image", {"200": _ok("The image", "Image")}),
            "patch": _op("updateImage", "Update an image with JSON patch operations",
                         {"200": _ok("The updated image", "Image")},
                         description="All operations or none. A PATCH racing another write "
                                     "of the image is re-applied to its result; 409 if the "
                                     "image kept changing. disk_format/container_format "
                                     "change only while queued (403 once saving).",
                         requestBody={"required": True, "content": {
                             "application/openstack-images-v2.1-json-patch": {
                                 "schema": {"$ref": "#/components/schemas/PatchOps"}}}}),
            "delete": _op("deleteImage", "Delete an image and its data",
                          {"204": _ok("Deleted")},
                          description="403 if protected (also when a PATCH to protected=true "
                                      "committed first); 409 if the image kept changing."),
        },
        "/v2/images/{image_id}/file": {
            "parameters": [IMAGE_ID],
            "put": _op("uploadImage", "Upload image data (queued -> saving -> active)",
                       {"204": _ok("Stored and active")},
                       description="409 if another upload started first, or if the formats "
                                   "changed during the upload (it is queued again).",
                       parameters=[{"name": "x-openstack-image-size", "in": "header",
                                    "required": False,
                                    "schema": {"type": "integer", "minimum": 0}}],
                       requestBody={"required": True, "content": {
                           "application/octet-stream": {
                               "schema": {"type": "string", "format": "binary"}}}}),
            "get": _op("downloadImage", "Download image data",
                       {"200": {"description": "The image data", "content": {
                           "application/octet-stream": {"schema": {"type": "string",
                                                                   "format": "binary"}}}},
                        "204": _ok("The image has no data"),
                        "206": {"description": "A byte range", "content": {
                            "application/octet-stream": {"schema": {"type": "string",
                                                                    "format": "binary"}}}}},
                       parameters=[{"name": "Range", "in": "header", "required": False,
                                    "schema": {"type": "string"}}]),
        },
        "/v2/images/{image_id}/extents": {
            "parameters": [IMAGE_ID],
            "get": _op("imageExtents", "chute extension (not in Glance): where the image's "
                                       "data lies; every byte outside the extents is zero. "
                                       "Same rules as downloading /file (404, 403 when "
                                       "deactivated, 204 when the image has no data).",
                       {"200": _ok("The data extents of the stored image", "Extents"),
                        "204": _ok("The image has no data")}),
        },
        "/v2/images/{image_id}/tags/{tag}": {
            "parameters": [IMAGE_ID, TAG],
            "put": _op("addTag", "Add a tag", {"204": _ok("Tagged")},
                       description="Idempotent (a present tag is 204). 413 past "
                                   "image_tag_quota, counted atomically with concurrent "
                                   "PUTs; 409 if the image kept changing."),
            "delete": _op("removeTag", "Remove a tag", {"204": _ok("Untagged")}),
        },
        "/v2/images/{image_id}/stage": {
            "parameters": [IMAGE_ID],
            "put": _op("stageImageData", "Stage the image's data for a glance-direct import "
                                         "(queued -> uploading): checked, hashed and inspected "
                                         "as an upload, kept in the datadir's staging area",
                       {"204": _ok("Staged")},
                       requestBody={"required": True, "content": {
                           "application/octet-stream": {"schema": {
                               "type": "string", "format": "binary"}}}}),
        },
        "/v2/images/{image_id}/import": {
            "parameters": [IMAGE_ID],
            "post": _op("importImage", "Import the image: glance-direct (a staged image: its "
                                       "staged file renamed into the store) or web-download "
                                       "(the server fetches `uri`, subject to "
                                       "[import_filtering_opts]; the image is importing until "
                                       "active, or queued with os_glance_failed_import)",
                        {"202": _ok("Accepted")},
                        requestBody={"required": True, "content": {"application/json": {
                            "schema": {"type": "object", "required": ["method"], "properties": {
                                "method": {"type": "object", "required": ["name"],
                                           "properties": {
                                               "name": {"enum": ["glance-direct",
                                                                 "web-download"]},
                                               "uri": {"type": "string"}}},
                                "all_stores": {"type": "boolean"},
                                "all_stores_must_succeed": {"type": "boolean"}}}}}}),
        },
        "/v2/images/{image_id}/actions/deactivate": {
            "parameters": [IMAGE_ID],
            "post": _op("deactivateImage", "Deactivate an active image",
                        {"204": _ok("Deactivated")}),
        },
        "/v2/images/{image_id}/actions/reactivate": {
            "parameters": [IMAGE_ID],
            "post": _op("reactivateImage", "Reactivate a deactivated image",
                        {"204": _ok("Active again")}),
        },
        "/v2/images/{image_id}/locations": {
            "parameters": [IMAGE_ID],
            "get": _op("imageLocations", "Service-only: the image's locations with metadata "
                                         "(403 unless the caller has the service or admin "
                                         "role, and X-Auth-Token is [DEFAULT] service_token "
                                         "when one is set)",
                       {"200": {"description": "Locations", "content": {"application/json": {
                           "schema": {"type": "array", "items": {
                               "$ref": "#/components/schemas/Location"}}}}}},
                       parameters=[{"name": "X-Auth-Token", "in": "header", "required": False,
                                    "schema": {"type": "string"}}]),
        },
        "/v2/images/{image_id}/tasks": {
            "parameters": [IMAGE_ID],
            "get": _op("listImageTasks", "The image's imports as Glance's tasks (API 2.12; "
                                         "policy get_image, 404 when it refuses)",
                       {"200": _ok("Tasks", "TaskList")}),
        },
        "/v2/images/{image_id}/members": {
            "parameters": [IMAGE_ID],
            "get": _op("listMembers", "The members of a shared image (the owner sees all, a "
                                      "member only itself)",
                       {"200": _ok("Members", "MemberList")}),
            "post": _op("addMember", "Share the image with a project (owner only; pending)",
                        {"200": _ok("The new member", "Member")},
                        requestBody={"required": True, "content": {"application/json": {
                            "schema": {"type": "object", "required": ["member"],
                                       "properties": {"member": {"type": "string"}}}}}}),
        },
        "/v2/images/{image_id}/members/{member_id}": {
            "parameters": [IMAGE_ID, MEMBER_ID],
            "get": _op("showMember", "One member", {"200": _ok("The member", "Member")}),
            "put": _op("updateMember", "The member accepts or rejects (itself only)",
                       {"200": _ok("The member", "Member")},
                       requestBody={"required": True, "content": {"application/json": {
                           "schema": {"type": "object", "required": ["status"],
                                      "properties": {"status": {"enum": [
                                          "pending", "accepted", "rejected"]}}}}}}),
            "delete": _op("deleteMember", "Stop sharing with a project (owner only)",
                          {"204": _ok("Removed")}),
        },
        "/v2/info/usage": {
            "get": _op("usage", "Quota usage: {} as Glance without Keystone unified limits",
                       {"200": {"description": "Usage", "content": {"application/json": {
                           "schema": {"type": "object", "required": ["usage"],
                                      "properties": {"usage": {"type": "object"}}}}}}}),
        },
        "/v2/info/import": {
            "get": _op("importInfo", "The interoperable import methods offered "
                                     "([DEFAULT] enabled_import_methods)",
                       {"200": {"description": "Import methods", "content": {
                           "application/json": {"schema": {
                               "type": "object", "required": ["import-methods"],
                               "properties": {"import-methods": {
                                   "type": "object", "required": ["value"],
                                   "properties": {"value": {"type": "array", "items": {
                                       "enum": ["glance-direct", "web-download",
                                                "copy-image"]}}}}}}}}}}),
        },
        "/v2/info/stores": {
            "get": _op("stores", "The stores of [DEFAULT] enabled_backends (404 as Glance "
                                 "without multi-store)", {"200": _ok("Stores", "StoreList")}),
        },
        "/v2/info/stores/detail": {
            "get": _op("storesDetail", "The stores with their type and properties (admin; 404 "
                                       "without multi-store)",
                       {"200": _ok("Stores", "StoreList")}),
        },
        "/v2/stores/{store_id}/{image_id}": {
            "parameters": [{"name": "store_id", "in": "path", "required": True,
                            "schema": {"type": "string"}}, IMAGE_ID],
            "delete": _op("deleteFromStore", "Remove one store's copy of an active image "
                                             "(never the last; 404 without multi-store)",
                          {"204": _ok("Removed")}),
        },
    },
    "components": {
        "schemas": SCHEMAS,
        "responses": {"Error": {
            "description": "An error: JSON when asked for, else HTML or plain text",
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}},
                        "text/html": {"schema": {"type": "string"}},
                        "text/plain": {"schema": {"type": "string"}}}}},
    },
}
