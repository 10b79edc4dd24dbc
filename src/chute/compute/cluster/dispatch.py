"""The compute API's calls to agents (POST builds, actions, DELETE, precache) over HTTP.

The instance uuid is the idempotency key: a build sent twice (a retry after a timeout, the
reconcile resending what an agent lacks) starts one build. Errors are chute.errors (the
client layer translates the libraries'): RemoteUnavailable when the agent did not answer,
RemoteError with the agent's status otherwise.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from chute.client._http import HttpApi
from chute.compute.cluster import wire
from chute.compute.cluster.internal import INTERNAL
from chute.compute.instance import Instance

Token = str | Callable[[], str] | None


class AgentClient:
    """One per compute API process; a pooled HTTP session per agent."""

    def __init__(self, token: Token, timeout: float = 30.0,
                 action_timeout: float = 300.0) -> None:
        self._token = token
        self.timeout = timeout
        self.action_timeout = action_timeout  # a stop waits up to the guest's shutdown_timeout
        self._apis: dict[str, HttpApi] = {}
        self._guard = threading.Lock()

    def build(self, agent_url: str, inst: Instance) -> None:
        self._api(agent_url).request("POST", f"{INTERNAL}/builds",
                                     json={"instance": wire.dump(inst)})

    def action(self, agent_url: str, instance_id: str, body: object) -> dict[str, Any] | None:
        """The agent's answer to a server action: None for a 202, else its JSON."""
        resp = self._api(agent_url).request("POST", f"{INTERNAL}/instances/{instance_id}/action",
                                            json=body, timeout=self.action_timeout)
        if resp.status_code == 202 or not resp.content:
            return None
        found: dict[str, Any] = resp.json()
        return found

    def delete(self, agent_url: str, instance_id: str) -> None:
        self._api(agent_url).request("DELETE", f"{INTERNAL}/instances/{instance_id}",
                                     timeout=self.action_timeout)

    def precache(self, agent_url: str, image_id: str, request_id: str) -> None:
        """Ask the agent to fetch an image into its `_base` ahead of boots (Nova 2.81); it
        reports the outcome with `request_id` (ComputeApiClient.precached)."""
        self._api(agent_url).request("POST", f"{INTERNAL}/images/{image_id}/precache",
                                     json={"request_id": request_id})

    def _api(self, agent_url: str) -> HttpApi:
        with self._guard:
            api = self._apis.get(agent_url)
            if api is None:
                api = self._apis[agent_url] = HttpApi(agent_url, None, self.timeout)
        token = self._token() if callable(self._token) else self._token
        if token:
            api.session.headers["X-Auth-Token"] = token
        return api


class ComputeApiClient:
    """An agent's calls to the compute API: its heartbeat and its instances' states."""

    def __init__(self, url: str, token: Token, timeout: float = 15.0) -> None:
        self.api = HttpApi(url, None, timeout)
        self._token = token

    def heartbeat(self, host: str, doc: dict[str, Any]) -> dict[str, Any]:
        return self._authed().json_object("PUT", f"{INTERNAL}/hosts/{host}", json=doc)

    def states(self, host: str, reports: list[tuple[dict[str, Any], str]]) -> dict[str, bool]:
        """Instances' states (wire documents, each with when it was read), in one request;
        the answer says of each id whether it is still placed on `host`."""
        answer = self._authed().json_object(
            "PUT", f"{INTERNAL}/hosts/{host}/states",
            json={"states": [{"instance": doc, "as_of": stamp} for doc, stamp in reports]})
        placed = answer.get("placed")
        return {str(k): v for k, v in placed.items() if isinstance(v, bool)} \
            if isinstance(placed, dict) else {}

    def precached(self, host: str, image_id: str, request_id: str, status: str,
                  detail: str | None) -> None:
        """The outcome of a pre-cache the compute API asked for: `cached` or `failed`."""
        self._authed().request("PUT", f"{INTERNAL}/hosts/{host}/precache/{image_id}",
                               json={"request_id": request_id, "status": status,
                                     "detail": detail})

    def _authed(self) -> HttpApi:
        token = self._token() if callable(self._token) else self._token
        if token:
            self.api.session.headers["X-Auth-Token"] = token
        return self.api
