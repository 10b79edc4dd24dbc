"""`/v2.1/os-keypairs`: thin handlers over compute/keypairs.py, in Nova's shapes by version
(2.2: `type`, 201 on create and 204 on delete; 2.10: `user_id` as a query parameter; 2.35:
`limit`/`marker` paging with `keypairs_links`)."""

from __future__ import annotations

from typing import Any

import falcon

from chute import httpapi
from chute.compute import microversion
from chute.compute.keypairs import SSH, Keypair
from chute.compute.request_auth import is_admin
from chute.compute.server_service import ServerService
from chute.errors import BadComputeRequest, ComputeForbidden


def request_user(req: falcon.Request) -> str:
    """Whose keypairs: the caller's user id from the auth layer's request context
    (`req.context.auth`, with `user_id` and `is_admin`), "" when there is no auth layer."""
    user = getattr(getattr(req.context, "auth", None), "user_id", None)
    return user if isinstance(user, str) else ""


def _user(req: falcon.Request) -> str:
    """2.10 lets the (admin) caller name another user with `user_id`."""
    asked = req.get_param("user_id")
    if asked is None or not microversion.of(req).at_least("2.10"):
        return request_user(req)
    if not is_admin(req):  # Nova's os-keypairs policy: only an admin names another user
        raise ComputeForbidden("Policy doesn't allow os_compute_api:os-keypairs to be "
                               "performed for another user.")
    return asked


def _summary(key: Keypair, version: microversion.APIVersion) -> dict[str, Any]:
    doc: dict[str, Any] = {"name": key.name, "public_key": key.public_key,
                           "fingerprint": key.fingerprint}
    if version.at_least("2.2"):
        doc["type"] = key.type
    return doc


class KeypairList:
    def __init__(self, manager: ServerService) -> None:
        self.manager = manager

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        version = microversion.of(req)
        found = self.manager.keypairs.list(_user(req))
        body: dict[str, Any] = {}
        if version.at_least("2.35"):
            found, body["keypairs_links"] = _page(req, found)
        body["keypairs"] = [{"keypair": _summary(k, version)} for k in found]
        if not body.get("keypairs_links"):
            body.pop("keypairs_links", None)
        httpapi.json_response(resp, body)

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        version = microversion.of(req)
        body = httpapi.read_json(req)
        if not isinstance(body, dict) or not isinstance(body.get("keypair"), dict):
            raise BadComputeRequest("The request body must be {\"keypair\": {...}}.")
        asked = body["keypair"]
        allowed = {"name", "public_key"}
        if version.at_least("2.2"):
            allowed.add("type")
        if version.at_least("2.10"):
            allowed.add("user_id")
        unexpected = sorted(set(asked) - allowed)
        if unexpected:
            raise BadComputeRequest(f"Invalid input for field/attribute keypair: Additional "
                                    f"properties are not allowed ('{unexpected[0]}' was "
                                    f"unexpected at microversion {version}).")
        user = asked.get("user_id") if isinstance(asked.get("user_id"), str) else None
        if user is not None and user != request_user(req) and not is_admin(req):
            raise ComputeForbidden("Policy doesn't allow os_compute_api:os-keypairs:create "
                                   "to be performed for another user.")
        key = self.manager.keypairs.create(user or request_user(req), asked.get("name"),
                                   asked.get("public_key"), asked.get("type", SSH))
        doc = {**_summary(key, version), "user_id": key.user_id}
        if key.private_key is not None:
            doc["private_key"] = key.private_key
        httpapi.json_response(resp, {"keypair": doc}, 201 if version.at_least("2.2") else 200)


class KeypairItem:
    def __init__(self, manager: ServerService) -> None:
        self.manager = manager

    def on_get(self, req: falcon.Request, resp: falcon.Response, name: str) -> None:
        key = self.manager.keypairs.get(_user(req), name)
        stamp = key.created_at.strftime("%Y-%m-%dT%H:%M:%S.000000")
        doc = {**_summary(key, microversion.of(req)), "user_id": key.user_id, "id": key.id,
               "created_at": stamp, "updated_at": None, "deleted": False, "deleted_at": None}
        httpapi.json_response(resp, {"keypair": doc})

    def on_delete(self, req: falcon.Request, resp: falcon.Response, name: str) -> None:
        self.manager.keypairs.delete(_user(req), name)
        resp.status = falcon.HTTP_204 if microversion.of(req).at_least("2.2") else \
            falcon.HTTP_202


def _page(req: falcon.Request, found: list[Keypair]) -> tuple[list[Keypair],
                                                              list[dict[str, str]]]:
    marker = req.get_param("marker")
    if marker is not None:
        names = [k.name for k in found]
        if marker not in names:
            raise BadComputeRequest(f"Marker {marker} could not be found.")
        found = found[names.index(marker) + 1:]
    limit = req.get_param_as_int("limit", min_value=0)
    if limit is None or len(found) <= limit:
        return found, []
    found = found[:limit]
    href = f"{req.prefix}/v2.1/os-keypairs?limit={limit}&marker={found[-1].name}"
    return found, [{"rel": "next", "href": href}]
