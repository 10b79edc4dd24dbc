"""The request context: who is calling, built once per request by chute.auth.middleware.

The service layers receive it and never read a header: `roles` already include the roles
the given ones imply (admin implies member implies reader, as Keystone's default implied
roles do), so a rule that asks for `reader` is met by a member.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

ADMIN, MEMBER, READER, SERVICE = "admin", "member", "reader", "service"
IMPLIED = {ADMIN: (MEMBER, READER), MEMBER: (READER,)}


def with_implied(roles: object) -> frozenset[str]:
    """`roles` (any iterable of names) with the roles they imply, lower-cased."""
    given = {str(role).strip().lower() for role in roles} - {""}  # type: ignore[attr-defined]
    for role in list(given):
        given.update(IMPLIED.get(role, ()))
    return frozenset(given)


@dataclass(frozen=True)
class RequestContext:
    """An authenticated caller (or, with auth_strategy = noauth, everyone)."""

    user_id: str | None
    project_id: str | None
    roles: frozenset[str]
    # The token the caller sent: chute-compute forwards it to the image service so that
    # the check of an image at boot is made as the user who boots (as Nova does).
    auth_token: str | None = field(default=None, repr=False)

    @property
    def is_admin(self) -> bool:
        return ADMIN in self.roles

    @property
    def service(self) -> bool:
        """A service (chute-compute) calling for itself, not for a user."""
        return SERVICE in self.roles

    @property
    def scoped(self) -> bool:
        """Bound to a project (false only under noauth: one unscoped admin for everyone)."""
        return self.project_id is not None

    def credentials(self) -> dict[str, Any]:
        """What oslo.policy's checks read (`role:`, `project_id:`, `user_id:`)."""
        return {"roles": sorted(self.roles), "project_id": self.project_id,
                "user_id": self.user_id, "is_admin": self.is_admin}


NOAUTH = RequestContext(user_id=None, project_id=None, roles=with_implied([ADMIN]))
