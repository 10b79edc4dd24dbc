"""What the compute API reads of the auth layer's request context (`req.context.auth`, with
`is_admin` and `project_id`). With no auth layer there is one user, who is everyone's admin,
as with Nova's noauth2."""

from __future__ import annotations

import falcon

from chute.errors import ComputeForbidden


def is_admin(req: falcon.Request) -> bool:
    ctx = getattr(req.context, "auth", None)
    return ctx is None or getattr(ctx, "is_admin", False) is True


def project_id(req: falcon.Request) -> str | None:
    project = getattr(getattr(req.context, "auth", None), "project_id", None)
    return project if isinstance(project, str) else None


def require_admin(req: falcon.Request, rule: str) -> None:
    """Nova's policy answer for an admin-only rule."""
    if not is_admin(req):
        raise ComputeForbidden(f"Policy doesn't allow {rule} to be performed.")
