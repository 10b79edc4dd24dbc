"""Glance's interoperable image import: stage, then import (`glance-direct`), or import from
a URL the server fetches (`web-download`).

Every byte goes through the upload's one path (chute.images.data: limits, hashes, format
inspection, O_DIRECT writes), so an imported image is verified exactly as an uploaded one.
Staged bytes are written to the store's staging area inside the datadir (`.staging/<id>`) and
their hashes recorded at stage time; `glance-direct` then renames the file into place, never
copying it again. `web-download` runs in a thread of the worker after the 202, as Glance runs
its import task: the image is `importing` meanwhile.

What Glance shows of an import, chute shows the same way, as image properties (Glance 33
without multi-store): `os_glance_import_task` (the task's id, the import's lock, removed when
the import ends), `os_glance_importing_to_stores` and `os_glance_failed_import` (store lists
in Glance, empty with one store). Each import is also recorded as Glance's `api_image_import`
task (chute.images.tasks_db): its input, its outcome (`result` or the failure's `message`),
who asked and in which request, for `GET /v2/images/{id}/tasks`. A failed import's reason is
also kept in `os_glance_failed_import` and in the log.
"""

from __future__ import annotations

import logging
import threading
import uuid
from typing import Any

import urllib3

from chute.auth.context import RequestContext
from chute.errors import ChuteError, Conflict, Forbidden, Gone, Invalid, NotFound
from chute.images.body import Body, StreamBody
from chute.images.data import ImageData, received_columns
from chute.images.import_filter import Target, validate
from chute.images.options import ImportSettings
from chute.images.status import (
    IMPORT_STAGED,
    IMPORT_WEB,
    IMPORTING,
    STAGE,
    UPLOADING,
)
from chute.images.tasks_db import Task, TaskOrigin, TasksDB

LOG = logging.getLogger(__name__)

TASK = "os_glance_import_task"
IMPORTING_TO = "os_glance_importing_to_stores"
FAILED = "os_glance_failed_import"
FETCH_TIMEOUT = urllib3.Timeout(connect=30, read=300)


class ImportService:
    def __init__(self, data: ImageData, settings: ImportSettings) -> None:
        self.data = data
        self.settings = settings
        self.db = data.db
        self.tasks = TasksDB(data.db.engine)

    def stage(self, image_id: str, body: Body, declared: int | None) -> None:
        """queued -> uploading with the bytes in the staging area and their results recorded."""
        record = self.data.start(image_id, declared, STAGE)
        LOG.info("image %s: queued -> uploading (declared size %s)", image_id, declared)
        self.data.store.unstage(image_id)  # what a crash mid-import left: the image is ours now
        try:
            received, _staged, writer = self.data.receive(
                record, body, declared, self.data.store.stager, UPLOADING)
        except BaseException as exc:
            self.db.requeue(image_id, UPLOADING)
            LOG.warning("image %s: staging failed (%s); back to queued, nothing staged",
                        image_id, getattr(exc, "message", None) or type(exc).__name__)
            raise
        recorded = self.db.update_columns(image_id, received_columns(received), UPLOADING)
        writer.settle()
        if not recorded:
            self.data.store.unstage(image_id)
            raise Gone(f"Image {image_id} could not be found after staging.")
        LOG.info("image %s: %d bytes staged", image_id, received.size)

    def start(self, image_id: str, body: object, origin: TaskOrigin) -> None:
        """Check the request, then run the import (glance-direct) or start it (web-download)."""
        method, uri = self._method(body)
        record = self.data.service.get(image_id)
        if record.status == "active":
            raise Conflict("Image with status active cannot be target for import")
        if method == "glance-direct" and record.status != UPLOADING:
            raise Conflict("Image needs to be staged before 'glance-direct' method can be used")
        if method == "web-download" and record.status != "queued":
            raise Conflict(f"Image needs to be in 'queued' state to use '{method}' method")
        if not record.container_format:
            raise Conflict("'container_format' needs to be set before import")
        if not record.disk_format:
            raise Conflict("'disk_format' needs to be set before import")
        task_id = str(uuid.uuid4())
        task_input = {"image_id": image_id, "import_req": body, "backend": None}
        if method == "glance-direct":
            self.tasks.create(task_id, image_id, task_input, origin)
            try:
                self._import_staged(image_id, task_id)
            except ChuteError as exc:
                self.tasks.finish(task_id, None, exc.message)
                raise
            self.tasks.finish(task_id, {"image_id": image_id})
            return
        target = validate(uri or "", self.settings)
        started = self.data.start(image_id, None, IMPORT_WEB)
        self.tasks.create(task_id, image_id, task_input, origin)
        self._lock(image_id, task_id)
        threading.Thread(target=self._web_download, args=(started, uri, target, task_id),
                         name=f"import-{image_id}", daemon=True).start()

    def tasks_of(self, image_id: str, ctx: RequestContext) -> list[Task]:
        """The image's import tasks, for whoever may see the image (Glance answers 404, not
        403, when `get_image` refuses)."""
        try:
            self.data.service.authorized(image_id, ctx, "get_image")
        except Forbidden:
            raise NotFound(f"No image found with ID {image_id}") from None
        return self.tasks.of_image(image_id)

    def _method(self, body: object) -> tuple[str, str | None]:
        if not isinstance(body, dict) or not isinstance(body.get("method"), dict):
            raise Invalid("Import request requires a 'method' field.")
        method: dict[str, Any] = body["method"]
        name = method.get("name")
        if not isinstance(name, str):
            raise Invalid("Import request requires a 'name' field.")
        if name not in self.settings.methods:
            raise Invalid(f"Unknown import method name '{name}'.")
        for flag, default in (("all_stores_must_succeed", True), ("all_stores", False)):
            if not isinstance(body.get(flag, default), bool):
                raise Invalid(f"'{flag}' must be boolean value only")
        if body.get("all_stores_must_succeed", True) is False:
            raise Invalid("All_stores_must_succeed can only be set with enabled_backends")
        if body.get("stores"):
            raise Invalid("Multi backend is not supported at this site: 'stores' cannot be "
                          "given.")
        uri = method.get("uri")
        if name == "web-download" and not isinstance(uri, str):
            raise Invalid("URI for web-download does not pass filtering: None")
        return name, uri

    def _lock(self, image_id: str, task_id: str) -> None:
        self.db.set_properties(image_id, {TASK: task_id, IMPORTING_TO: "", FAILED: ""})

    def _import_staged(self, image_id: str, task_id: str) -> None:
        """uploading -> importing -> active: the staged file renamed into the store."""
        record = self.data.service.get(image_id)
        formats = {"disk_format": record.disk_format,
                   "container_format": record.container_format}
        if not self.db.cas_status(image_id, IMPORT_STAGED.source, IMPORT_STAGED.target,
                                  unchanged=formats):
            raise Conflict(f"New operation on image '{image_id}' is not permitted as prior "
                           "operation is still in progress")
        self._lock(image_id, task_id)
        try:
            location = self.data.store.promote(image_id)
        except OSError as exc:
            self._failed(image_id, f"the staged data could not be imported: {exc.strerror}")
            raise Conflict(f"Image {image_id}: the staged data could not be imported") from None
        columns = {k: record.columns[k] for k in
                   ("size", "checksum", "os_hash_algo", "os_hash_value", "chute_blake3_blocks",
                    "virtual_size")}
        # The formats the staged bytes were inspected as (a PATCH may change them while
        # importing, as in Glance): never active with formats its data was not checked as.
        if not self.db.activate(image_id, columns, location, unchanged=formats,
                                source=IMPORTING):
            self.data.store.delete(location.url)
            self._failed(image_id, "the image changed during its import")
            raise Gone(f"Image {image_id} could not be found after import.")
        self.db.set_properties(image_id, {TASK: None})
        LOG.info("image %s: uploading -> importing -> active (glance-direct, %s)", image_id,
                 location.url)

    def _failed(self, image_id: str, reason: str) -> None:
        self.db.requeue(image_id, IMPORTING)
        self.data.store.unstage(image_id)
        self.db.set_properties(image_id, {TASK: None, FAILED: reason})
        LOG.warning("image %s: import failed (%s); back to queued", image_id, reason)

    def _web_download(self, record: Any, uri: str, target: Target, task_id: str) -> None:
        image_id = record.id
        try:
            with _fetch(target) as response:
                declared = response.headers.get("Content-Length")
                self.data.store_and_activate(
                    record, StreamBody(response), int(declared) if declared else None,
                    IMPORTING)
        except Exception as exc:  # the thread's end: whatever failed, the image is given back
            if not isinstance(exc, (ChuteError, OSError, urllib3.exceptions.HTTPError)):
                LOG.exception("image %s: web-download of %s failed", image_id, uri)
            reason = getattr(exc, "message", None) or str(exc) or type(exc).__name__
            self.db.requeue(image_id, IMPORTING)
            self.tasks.finish(task_id, None, f"{uri}: {reason}")
            self.db.set_properties(image_id, {TASK: None, FAILED: f"{uri}: {reason}"})
            LOG.warning("image %s: web-download of %s failed (%s); back to queued", image_id,
                        uri, reason)
            return
        # The task ends before the lock goes: whoever sees the import over sees its task over.
        self.tasks.finish(task_id, {"image_id": image_id})
        self.db.set_properties(image_id, {TASK: None})


class _Response:
    """A streamed response that must be 200, closed (connection released) at the end."""

    def __init__(self, response: urllib3.BaseHTTPResponse) -> None:
        self._response = response
        self.headers = response.headers

    def read(self, size: int, /) -> bytes:
        return self._response.read(size)

    def __enter__(self) -> "_Response":
        return self

    def __exit__(self, *exc: object) -> None:
        self._response.release_conn()
        self._response.close()


def _fetch(target: Target) -> _Response:
    """GET the target from an address the filter returned (never resolving the name again),
    following no redirect: a redirect's location has not passed the filter."""
    pool: urllib3.HTTPConnectionPool
    if target.scheme == "https":
        pool = urllib3.HTTPSConnectionPool(target.addresses[0], target.port,
                                           server_hostname=target.host,
                                           assert_hostname=target.host,
                                           timeout=FETCH_TIMEOUT, retries=False)
    else:
        pool = urllib3.HTTPConnectionPool(target.addresses[0], target.port,
                                          timeout=FETCH_TIMEOUT, retries=False)
    default = 443 if target.scheme == "https" else 80
    host = target.host if target.port == default else f"{target.host}:{target.port}"
    if ":" in target.host and target.port != default:
        host = f"[{target.host}]:{target.port}"
    response = pool.urlopen("GET", target.path, headers={"Host": host},
                            redirect=False, preload_content=False)
    if response.status != 200:
        response.release_conn()
        raise Invalid(f"HTTP {response.status} from the server")
    return _Response(response)
