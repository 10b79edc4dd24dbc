"""`/v2/images/{id}/members` resources and the member schemas: thin over MemberService."""

from __future__ import annotations

from typing import Any

import falcon

from chute.auth.middleware import context_of
from chute.httpapi import json_response, no_body, read_json
from chute.images.members import STATUSES, MemberService
from chute.images.members_db import Member
from chute.images.views import timestamp

# Glance 33's `/v2/schemas/member` (its properties and their types).
MEMBER_SCHEMA: dict[str, Any] = {
    "name": "member",
    "properties": {
        "created_at": {"type": "string", "description": "Date and time of image member "
                                                       "creation"},
        "image_id": {"type": "string", "description": "An identifier for the image",
                     "pattern": "^([0-9a-fA-F]){8}-([0-9a-fA-F]){4}-([0-9a-fA-F]){4}"
                                "-([0-9a-fA-F]){4}-([0-9a-fA-F]){12}$"},
        "member_id": {"type": "string", "description": "An identifier for the image member "
                                                      "(tenantId)"},
        "status": {"type": "string", "description": "The status of this image member",
                   "enum": list(STATUSES)},
        "updated_at": {"type": "string", "description": "Date and time of last modification "
                                                       "of image member"},
        "schema": {"type": "string", "readOnly": True},
    },
}
MEMBERS_SCHEMA: dict[str, Any] = {
    "name": "members",
    "properties": {"members": {"type": "array", "items": MEMBER_SCHEMA},
                   "schema": {"type": "string"}},
    "links": [{"rel": "schema", "href": "{schema}"}],
}


def member_document(member: Member) -> dict[str, Any]:
    return {"created_at": timestamp(member.created_at), "image_id": member.image_id,
            "member_id": member.member, "schema": "/v2/schemas/member",
            "status": member.status, "updated_at": timestamp(member.updated_at)}


class MembersResource:
    def __init__(self, members: MemberService) -> None:
        self.members = members

    def on_get(self, req: falcon.Request, resp: falcon.Response, image_id: str) -> None:
        no_body(req)
        found = self.members.list(image_id, context_of(req))
        json_response(resp, {"members": [member_document(m) for m in found],
                             "schema": "/v2/schemas/members"})

    def on_post(self, req: falcon.Request, resp: falcon.Response, image_id: str) -> None:
        added = self.members.add(image_id, read_json(req), context_of(req))
        json_response(resp, member_document(added))


class MemberResource:
    def __init__(self, members: MemberService) -> None:
        self.members = members

    def on_get(self, req: falcon.Request, resp: falcon.Response, image_id: str,
               member_id: str) -> None:
        no_body(req)
        json_response(resp, member_document(self.members.get(image_id, member_id,
                                                             context_of(req))))

    def on_put(self, req: falcon.Request, resp: falcon.Response, image_id: str,
               member_id: str) -> None:
        updated = self.members.update(image_id, member_id, read_json(req), context_of(req))
        json_response(resp, member_document(updated))

    def on_delete(self, req: falcon.Request, resp: falcon.Response, image_id: str,
                  member_id: str) -> None:
        no_body(req)
        self.members.remove(image_id, member_id, context_of(req))
        resp.status = falcon.HTTP_204
