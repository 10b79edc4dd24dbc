"""Nova's os-quota-sets: a project's quotas (show, `/detail` with what is in use,
`/defaults`), set by an admin (PUT) and reset (DELETE), under Nova's policy rules
(`os_compute_api:os-quota-sets:*`). Only instances, cores and RAM can be set: they are what a
boot counts (compute/quotas.py); the others are shown at the values chute enforces.
"""

from __future__ import annotations

from typing import Any

import falcon

from chute import httpapi
from chute.auth.middleware import context_of
from chute.auth.policy import Authorizer
from chute.compute import microversion
from chute.compute.keypairs import KEY_PAIRS
from chute.compute.quotas import RESOURCES, UNLIMITED, Usage
from chute.compute.server_fields import METADATA_ITEMS
from chute.compute.server_service import ServerService
from chute.errors import BadComputeRequest

RULE = "os_compute_api:os-quota-sets"
MAX_LIMIT = 2147483647  # Nova's db.MAX_INT
# What chute enforces of the rest, at Nova's defaults (server groups: chute has none).
FIXED: dict[str, int] = {"metadata_items": METADATA_ITEMS, "key_pairs": KEY_PAIRS,
                         "server_groups": 0, "server_group_members": 0}
INJECTED: dict[str, int] = {"injected_files": 5, "injected_file_content_bytes": 10240,
                            "injected_file_path_bytes": 255}  # gone at 2.57
NETWORK: dict[str, int] = {"fixed_ips": -1, "floating_ips": -1, "security_groups": -1,
                           "security_group_rules": -1, "networks": -1}  # gone at 2.36


def _others(req: falcon.Request) -> dict[str, int]:
    version = microversion.of(req)
    others = dict(FIXED)
    if not version.at_least("2.57"):
        others.update(INJECTED)
    if not version.at_least("2.36"):
        others.update(NETWORK)
    return others


def quota_set(req: falcon.Request, limits: dict[str, int]) -> dict[str, int]:
    return dict(sorted({**_others(req), **limits}.items()))


def detail_set(req: falcon.Request, limits: dict[str, int], used: Usage) -> dict[str, Any]:
    counted = {name: {"limit": limits[name], "in_use": used.of(name), "reserved": 0}
               for name in RESOURCES}
    fixed = {name: {"limit": value, "in_use": 0, "reserved": 0}
             for name, value in _others(req).items()}
    return dict(sorted({**fixed, **counted}.items()))


class _Base:
    def __init__(self, manager: ServerService, policy: Authorizer) -> None:
        self.manager = manager
        self.policy = policy

    def authorize(self, req: falcon.Request, action: str, project_id: str) -> None:
        self.policy.authorize(f"{RULE}:{action}", {"project_id": project_id}, context_of(req))


class QuotaSet(_Base):
    def on_get(self, req: falcon.Request, resp: falcon.Response, project_id: str) -> None:
        self.authorize(req, "show", project_id)
        limits = self.manager.quotas.limits(project_id)
        httpapi.json_response(resp, {"quota_set": {"id": project_id,
                                                   **quota_set(req, limits)}})

    def on_put(self, req: falcon.Request, resp: falcon.Response, project_id: str) -> None:
        self.authorize(req, "update", project_id)
        values, force = parse_update(httpapi.read_json(req))
        self.manager.quotas.update(project_id, values, force)
        httpapi.json_response(resp, {"quota_set": quota_set(
            req, self.manager.quotas.limits(project_id))})

    def on_delete(self, req: falcon.Request, resp: falcon.Response, project_id: str) -> None:
        self.authorize(req, "delete", project_id)
        self.manager.quotas.reset(project_id)
        resp.status = falcon.HTTP_202


class QuotaSetDetail(_Base):
    def on_get(self, req: falcon.Request, resp: falcon.Response, project_id: str) -> None:
        self.authorize(req, "detail", project_id)
        quotas = self.manager.quotas
        body = detail_set(req, quotas.limits(project_id), quotas.usage(project_id))
        httpapi.json_response(resp, {"quota_set": {"id": project_id, **body}})


class QuotaSetDefaults(_Base):
    def on_get(self, req: falcon.Request, resp: falcon.Response, project_id: str) -> None:
        self.authorize(req, "defaults", project_id)
        httpapi.json_response(resp, {"quota_set": {
            "id": project_id, **quota_set(req, dict(self.manager.quotas.defaults))}})


def _limit(name: str, value: object) -> int:
    if isinstance(value, str) and value.lstrip("-").isdigit():
        value = int(value)
    if (not isinstance(value, int) or isinstance(value, bool) or value < UNLIMITED
            or value > MAX_LIMIT):
        raise BadComputeRequest(f"Invalid input for field/attribute {name}. Value: {value!r}. "
                                f"{value!r} is not an integer from -1 to {MAX_LIMIT}.")
    return value


def parse_update(body: object) -> tuple[dict[str, int], bool]:
    """The limits a PUT sets and its `force`; Nova's schema (no unknown keys)."""
    if not isinstance(body, dict) or not isinstance(body.get("quota_set"), dict):
        raise BadComputeRequest("The request body must be {\"quota_set\": {...}}.")
    given: dict[str, Any] = dict(body["quota_set"])
    force = given.pop("force", False)
    if not isinstance(force, bool):
        raise BadComputeRequest(f"Invalid input for field/attribute force. Value: {force!r}. "
                                f"{force!r} is not of type 'boolean'.")
    values: dict[str, int] = {}
    for name, value in given.items():
        if name in RESOURCES:
            values[name] = _limit(name, value)
        elif name in {**FIXED, **INJECTED, **NETWORK}:
            raise BadComputeRequest(f"chute-compute enforces {name} at a fixed value; only "
                                    f"{', '.join(RESOURCES)} can be set per project.")
        else:
            raise BadComputeRequest("Invalid input for field/attribute quota_set. Additional "
                                    f"properties are not allowed ('{name}' was unexpected)")
    return values, force
