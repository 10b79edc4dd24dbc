"""What the compute API layer (api.py, api_*.py) needs of the service behind it: the
single host's ComputeManager (chute-compute standalone) or chute-compute-api's
ClusterService, which places servers on agents (compute/cluster/service.py)."""

from __future__ import annotations

import builtins
from collections.abc import Callable
from typing import Any, Protocol

from chute.auth.context import RequestContext
from chute.compute.instance import Instance
from chute.compute.instance_actions import InstanceActions
from chute.compute.keypairs import Keypairs
from chute.compute.quotas import Quotas
from chute.compute.server_fields import BootRequest
from chute.compute.settings import ManagerSettings


class ServerActionsService(Protocol):
    def perform(self, instance_id: str, body: object) -> dict[str, Any] | None: ...


class ServerService(Protocol):
    @property
    def settings(self) -> ManagerSettings: ...

    @property
    def keypairs(self) -> Keypairs: ...

    @property
    def actions(self) -> InstanceActions: ...

    @property
    def quotas(self) -> Quotas: ...

    @property
    def server_actions(self) -> ServerActionsService: ...

    def get(self, instance_id: str, project_id: str | None = None) -> Instance: ...

    def list(self, project_id: str | None = None) -> builtins.list[Instance]: ...

    def create(self, request: BootRequest, ctx: RequestContext = ...
               ) -> builtins.list[Instance]: ...

    def edit(self, instance_id: str, change: Callable[[Instance], None]) -> Instance: ...

    def delete(self, instance_id: str, project_id: str | None = None) -> None: ...
