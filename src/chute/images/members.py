"""Image members (Glance's `/v2/images/{id}/members`): sharing an image with other projects.

Glance's rules: only a `shared` image has members; its owner adds and removes them
(`add_member`, `delete_member`); a member answers for itself alone, accepting or rejecting
(`modify_member`: the owner cannot accept for it); the owner sees every member, a member only
itself. A new member is `pending`: it sees the image, but lists it only when it asks with
`member_status=pending` (or `all`); once `accepted`, the image is in its default list.
Knows nothing of HTTP; raises chute.errors.
"""

from __future__ import annotations

from chute.auth.context import RequestContext
from chute.errors import Forbidden, Invalid, NotFound
from chute.images.members_db import Member
from chute.images.service import ImageService

STATUSES = ("pending", "accepted", "rejected")
MEMBER_ID_MAX = 255


class MemberService:
    def __init__(self, images: ImageService) -> None:
        self.images = images
        self.db = images.members

    def _owns(self, owner: str | None, ctx: RequestContext) -> bool:
        return ctx.is_admin or (ctx.project_id is not None and owner == ctx.project_id)

    def list(self, image_id: str, ctx: RequestContext) -> list[Member]:
        record = self.images.authorized(image_id, ctx, "get_members")
        if record.visibility != "shared":
            raise Forbidden("Only shared images have members.")
        if self._owns(record.owner, ctx):
            return self.db.list(image_id)
        return self.db.list(image_id, ctx.project_id or "")

    def get(self, image_id: str, member_id: str, ctx: RequestContext) -> Member:
        record = self.images.authorized(image_id, ctx, "get_member")
        found = self.db.get(image_id, member_id)
        if found is None or not (self._owns(record.owner, ctx) or member_id == ctx.project_id):
            raise NotFound(f"{member_id} is not a member of image {image_id}.")
        return found

    def add(self, image_id: str, body: object, ctx: RequestContext) -> Member:
        member_id = body.get("member") if isinstance(body, dict) else None
        if not isinstance(member_id, str) or not member_id or len(member_id) > MEMBER_ID_MAX:
            raise Invalid("Member to be added not specified: the body must be "
                          "{\"member\": \"<project id>\"}.")
        record = self.images.authorized(image_id, ctx, "add_member")
        if record.visibility != "shared":
            raise Forbidden("Only shared images have members.")
        return self.db.add(image_id, member_id, "pending")

    def update(self, image_id: str, member_id: str, body: object,
               ctx: RequestContext) -> Member:
        status = body.get("status") if isinstance(body, dict) else None
        if status not in STATUSES:
            raise Invalid(f"Status must be one of: {', '.join(STATUSES)}.")
        self.get(image_id, member_id, ctx)  # 404 unless the caller sees that membership
        record = self.images.get(image_id)
        target = {**self.images.target(record, ctx), "member_id": member_id}
        self.images.policy.authorize("modify_member", target, ctx)
        if not self.db.set_status(image_id, member_id, str(status)):
            raise NotFound(f"{member_id} is not a member of image {image_id}.")
        return self.get(image_id, member_id, ctx)

    def remove(self, image_id: str, member_id: str, ctx: RequestContext) -> None:
        self.images.authorized(image_id, ctx, "delete_member")
        if not self.db.remove(image_id, member_id):
            raise NotFound(f"{member_id} is not a member of image {image_id}.")
