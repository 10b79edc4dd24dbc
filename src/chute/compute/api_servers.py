"""What hangs off one server in Nova's API: metadata, tags (2.26), the security groups it is
in, and its instance actions. Thin handlers over the manager (`edit` stores what the user may
change) and compute/instance_actions.py; the field rules are compute/server_fields.py's.

chute-compute has no firewall: every server is reported in the one group `default`, with no
rules, so that clients which check a server's groups (Ansible's openstack.cloud.server on a
re-run) find what they asked for; nothing filters the guest's traffic.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import falcon

from chute import httpapi
from chute.compute import microversion, server_fields, views
from chute.compute.instance import Instance
from chute.compute.instance_actions import Action
from chute.compute.server_service import ServerService
from chute.errors import BadComputeRequest, ComputeNotFound, ServerNotFound


def _object(req: falcon.Request, key: str) -> dict[str, Any]:
    body = httpapi.read_json(req)
    if not isinstance(body, dict) or not isinstance(body.get(key), dict):
        raise BadComputeRequest(f"Malformed request body: {{\"{key}\": {{...}}}} is required.")
    found: dict[str, Any] = body[key]
    return found


class ServerMetadata:
    """`/servers/{id}/metadata`: GET all, POST merges, PUT replaces."""

    def __init__(self, manager: ServerService) -> None:
        self.manager = manager

    def on_get(self, req: falcon.Request, resp: falcon.Response, server_id: str) -> None:
        httpapi.json_response(resp, {"metadata": self.manager.get(server_id).metadata})

    def on_post(self, req: falcon.Request, resp: falcon.Response, server_id: str) -> None:
        items = _object(req, "metadata")

        def merge(inst: Instance) -> None:
            merged = {**inst.metadata, **items}
            inst.metadata = server_fields.check_metadata(merged)

        server_fields.check_metadata(items)
        inst = self.manager.edit(server_id, merge)
        httpapi.json_response(resp, {"metadata": inst.metadata})

    def on_put(self, req: falcon.Request, resp: falcon.Response, server_id: str) -> None:
        items = server_fields.check_metadata(_object(req, "metadata"))

        def replace(inst: Instance) -> None:
            inst.metadata = items

        inst = self.manager.edit(server_id, replace)
        httpapi.json_response(resp, {"metadata": inst.metadata})


class ServerMetadataItem:
    def __init__(self, manager: ServerService) -> None:
        self.manager = manager

    def on_get(self, req: falcon.Request, resp: falcon.Response, server_id: str,
               key: str) -> None:
        metadata = self.manager.get(server_id).metadata
        if key not in metadata:
            raise ComputeNotFound("Metadata item was not found")
        httpapi.json_response(resp, {"meta": {key: metadata[key]}})

    def on_put(self, req: falcon.Request, resp: falcon.Response, server_id: str,
               key: str) -> None:
        meta = _object(req, "meta")
        if len(meta) != 1:
            raise BadComputeRequest("Request body contains too many items")
        if key not in meta:
            raise BadComputeRequest("Request body and URI mismatch")
        server_fields.check_metadata(meta)

        def put(inst: Instance) -> None:
            inst.metadata = server_fields.check_metadata({**inst.metadata, **meta})

        self.manager.edit(server_id, put)
        httpapi.json_response(resp, {"meta": meta})

    def on_delete(self, req: falcon.Request, resp: falcon.Response, server_id: str,
                  key: str) -> None:
        if key not in self.manager.get(server_id).metadata:
            raise ComputeNotFound("Metadata item was not found")

        def drop(inst: Instance) -> None:
            inst.metadata.pop(key, None)

        self.manager.edit(server_id, drop)
        resp.status = falcon.HTTP_204


def _tags_version(req: falcon.Request) -> None:
    """Nova routes the tag API from 2.26 only: a 404 before, as for any unknown path."""
    if not microversion.of(req).at_least("2.26"):
        raise falcon.HTTPNotFound(description="The resource could not be found.")


class ServerTags:
    def __init__(self, manager: ServerService) -> None:
        self.manager = manager

    def on_get(self, req: falcon.Request, resp: falcon.Response, server_id: str) -> None:
        _tags_version(req)
        httpapi.json_response(resp, {"tags": self.manager.get(server_id).tags})

    def on_put(self, req: falcon.Request, resp: falcon.Response, server_id: str) -> None:
        _tags_version(req)
        body = httpapi.read_json(req)
        if not isinstance(body, dict) or "tags" not in body:
            raise BadComputeRequest("Malformed request body: {\"tags\": [...]} is required.")
        tags = server_fields.check_tags(body["tags"])

        def replace(inst: Instance) -> None:
            inst.tags = tags

        httpapi.json_response(resp, {"tags": self.manager.edit(server_id, replace).tags})

    def on_delete(self, req: falcon.Request, resp: falcon.Response, server_id: str) -> None:
        _tags_version(req)

        def clear(inst: Instance) -> None:
            inst.tags = []

        self.manager.edit(server_id, clear)
        resp.status = falcon.HTTP_204


class ServerTag:
    def __init__(self, manager: ServerService) -> None:
        self.manager = manager

    def on_get(self, req: falcon.Request, resp: falcon.Response, server_id: str,
               tag: str) -> None:
        _tags_version(req)
        if tag not in self.manager.get(server_id).tags:
            raise ComputeNotFound(f"Tag {tag} could not be found.")
        resp.status = falcon.HTTP_204

    def on_put(self, req: falcon.Request, resp: falcon.Response, server_id: str,
               tag: str) -> None:
        _tags_version(req)
        server_fields.check_tag(tag)
        existed = tag in self.manager.get(server_id).tags

        def add(inst: Instance) -> None:
            inst.tags = server_fields.check_tags([*inst.tags, tag])

        self.manager.edit(server_id, add)
        if existed:
            resp.status = falcon.HTTP_204
            return
        resp.status = falcon.HTTP_201
        resp.set_header("Location", f"{req.prefix}/v2.1/servers/{server_id}/tags/{tag}")

    def on_delete(self, req: falcon.Request, resp: falcon.Response, server_id: str,
                  tag: str) -> None:
        _tags_version(req)
        if tag not in self.manager.get(server_id).tags:
            raise ComputeNotFound(f"Tag {tag} could not be found.")

        def drop(inst: Instance) -> None:
            inst.tags = [t for t in inst.tags if t != tag]

        self.manager.edit(server_id, drop)
        resp.status = falcon.HTTP_204


class ServerIps:
    """Nova's os-server-ips: the server's addresses by network."""

    def __init__(self, manager: ServerService) -> None:
        self.manager = manager

    def on_get(self, req: falcon.Request, resp: falcon.Response, server_id: str) -> None:
        found = views.addresses(self.manager.get(server_id), extended=False)
        httpapi.json_response(resp, {"addresses": found})


class ServerIpsOfNetwork:
    def __init__(self, manager: ServerService) -> None:
        self.manager = manager

    def on_get(self, req: falcon.Request, resp: falcon.Response, server_id: str,
               network: str) -> None:
        found = views.addresses(self.manager.get(server_id), extended=False)
        if network not in found:
            raise ComputeNotFound("Instance is not a member of specified network")
        httpapi.json_response(resp, {network: found[network]})


class ServerSecurityGroups:
    """None: chute has no firewall, so no group filters anything. An empty list is also what
    lets a client without a network service re-read a server (Ansible's server module asks
    the network API about each group it finds here)."""

    def __init__(self, manager: ServerService) -> None:
        self.manager = manager

    def on_get(self, req: falcon.Request, resp: falcon.Response, server_id: str) -> None:
        self.manager.get(server_id)
        httpapi.json_response(resp, {"security_groups": []})


def _stamp(value: datetime | None) -> str | None:
    return value.strftime("%Y-%m-%dT%H:%M:%S.000000") if value is not None else None


def _action(action: Action, version: microversion.APIVersion) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "action": action.action, "instance_uuid": action.instance_id,
        "request_id": action.request_id, "user_id": action.user_id,
        "project_id": action.project_id, "start_time": _stamp(action.start_time),
        "message": action.message}
    if version.at_least("2.58"):
        doc["updated_at"] = _stamp(action.updated)
    return doc


def _event(action: Action, version: microversion.APIVersion) -> dict[str, Any]:
    doc: dict[str, Any] = {"event": action.event, "start_time": _stamp(action.start_time),
                           "finish_time": _stamp(action.finish_time), "result": action.result}
    if version.at_least("2.62"):
        doc["hostId"] = ""
    if action.details is not None:
        doc["traceback"] = action.details  # Nova's field for what failed
    return doc


def _actions(manager: ServerService, req: falcon.Request, server_id: str) -> list[Action]:
    """A deleted server's actions stay readable from 2.21, as in Nova."""
    found = manager.actions.list(server_id)
    try:
        manager.get(server_id)
    except ServerNotFound:
        if not found or not microversion.of(req).at_least("2.21"):
            raise
    return found


class InstanceActionList:
    outlives_server = True  # compute.api.ServerScope: readable after the server is deleted

    def __init__(self, manager: ServerService) -> None:
        self.manager = manager

    def on_get(self, req: falcon.Request, resp: falcon.Response, server_id: str) -> None:
        version = microversion.of(req)
        found = _actions(self.manager, req, server_id)
        httpapi.json_response(resp, {"instanceActions": [_action(a, version) for a in found]})


class InstanceActionItem:
    outlives_server = True

    def __init__(self, manager: ServerService) -> None:
        self.manager = manager

    def on_get(self, req: falcon.Request, resp: falcon.Response, server_id: str,
               request_id: str) -> None:
        version = microversion.of(req)
        _actions(self.manager, req, server_id)
        action = self.manager.actions.get(server_id, request_id)
        doc = {**_action(action, version), "events": [_event(action, version)]}
        httpapi.json_response(resp, {"instanceAction": doc})
