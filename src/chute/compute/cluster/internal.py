"""What both sides of the internal endpoints share: their path prefix and who may call them
(a service: an agent, or the compute API; anyone under noauth)."""

from __future__ import annotations

import falcon

from chute.auth.middleware import context_of
from chute.errors import PolicyDenied

INTERNAL = "/internal/v1"


def require_service(req: falcon.Request, strategy: str) -> None:
    if strategy != "noauth" and not context_of(req).service:
        raise PolicyDenied("Internal endpoints need the service role.")
