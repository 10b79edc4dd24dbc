"""Interoperable import: `GET /v2/info/import`, `PUT .../stage`, `POST .../import`, and the
imports recorded as Glance's tasks, `GET /v2/images/{id}/tasks`."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import falcon

from chute.auth.middleware import context_of
from chute.httpapi import json_response, no_body, read_json, request_id_var
from chute.images.api_data import ReceivingResource
from chute.images.body import open_body
from chute.images.imports import ImportService
from chute.images.tasks_db import Task, TaskOrigin


class ImportInfoResource:
    def __init__(self, methods: tuple[str, ...]) -> None:
        self.methods = methods

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        no_body(req)
        json_response(resp, {"import-methods": {
            "description": "Import methods available.", "type": "array",
            "value": list(self.methods)}})


class StageResource(ReceivingResource):
    """`PUT /v2/images/{id}/stage`: the upload's checks, limits and stall handling; the bytes
    go to the staging area (chute.images.imports)."""

    def __init__(self, imports: ImportService, socket_timeout: float) -> None:
        super().__init__(imports.data, socket_timeout)
        self.imports = imports

    def receive(self, req: falcon.Request, image_id: str, declared: int | None) -> None:
        self.imports.stage(image_id, open_body(req.env), declared)


class ImportResource:
    def __init__(self, imports: ImportService) -> None:
        self.imports = imports

    def on_post(self, req: falcon.Request, resp: falcon.Response, image_id: str) -> None:
        body = read_json(req)
        ctx = context_of(req)
        # Glance: copying an image to more stores is the admin's (copy_image), any other
        # import needs the right to change the image.
        method = body.get("method") if isinstance(body, dict) else None
        copying = isinstance(method, dict) and method.get("name") == "copy-image"
        self.imports.data.service.authorized(image_id, ctx,
                                             "copy_image" if copying else "upload_image")
        self.imports.start(image_id, body,
                           TaskOrigin(ctx.project_id, ctx.user_id, request_id_var.get()),
                           req.get_header("X-Image-Meta-Store"))
        resp.status = falcon.HTTP_202
        # Glance's empty 202 is webob's text/html: glanceclient parses a body typed
        # application/json, and an empty one is a JSON error that fails `image-import`.
        resp.content_type = "text/html; charset=UTF-8"


class ImageTasksResource:
    """`GET /v2/images/{id}/tasks` (Glance 2.12). `/v2/tasks` (admin-only, deprecated in
    Glance) is not served."""

    def __init__(self, imports: ImportService) -> None:
        self.imports = imports

    def on_get(self, req: falcon.Request, resp: falcon.Response, image_id: str) -> None:
        no_body(req)
        tasks = self.imports.tasks_of(image_id, context_of(req))
        json_response(resp, {"tasks": [task_view(t) for t in tasks]})


def task_view(task: Task) -> dict[str, Any]:
    """A task as Glance's database layer formats it (its timestamps as oslo's to_primitive)."""
    return {"id": task.id, "type": task.type, "status": task.status, "owner": task.owner,
            "expires_at": _time(task.expires_at), "created_at": _time(task.created_at),
            "updated_at": _time(task.updated_at), "deleted_at": None, "deleted": False,
            "image_id": task.image_id, "request_id": task.request_id, "user_id": task.user_id,
            "input": task.input, "result": task.result, "message": task.message}


def _time(value: datetime | None) -> str | None:
    return None if value is None else value.strftime("%Y-%m-%dT%H:%M:%S.%f")
