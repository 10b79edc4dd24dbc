"""Glance's interoperable image import: stage, then import (`glance-direct`), or import from
a URL the server fetches (`web-download`).

Every byte goes through the upload's one path (chute.images.data: limits, hashes, format
inspection, O_DIRECT writes), so an imported image is verified exactly as an uploaded one.
Staged bytes are written to the store's staging area inside the datadir (`.staging/<id>`) and
their hashes recorded at stage time; `glance-direct` then renames the file into place, never
copying it again. `web-download` runs in a thread of the worker after the 202, as Glance runs
its import task: the image is `importing` meanwhile.

An import holds the image's upload claim (chute.images.claims) as an upload does, from before
`-> importing` until its outcome is recorded (a web-download's thread inherits the claim the
request took): a second data write meanwhile, on any node, is Glance's 409, and an image left
`importing` by a node that died is taken over (chute.images.recovery) by the next write of
its data or a node's start-up sweep, never left `importing` for ever.

A copy (`copy-image`, or the stores after the first of an import to several) holds the same
claim, one per image rather than per store copy: the claim, the temporary files' names and the
start-up sweep are all per image, and an image has one import task at a time anyway (its
`os_glance_import_task` lock), so a finer claim would let nothing more run at once. It is
taken before the lock and held by the copying thread until the lock is released, so a node
starting up meanwhile never removes a live copy's temporary file, and a copy whose node died
is taken over by the next copy-image (its task ends failed, its files go) instead of leaving
the image locked for ever.

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
from collections.abc import Sequence
from contextlib import ExitStack
from typing import TYPE_CHECKING, Any

from chute.auth.context import RequestContext
from chute.errors import ChuteError, Conflict, Forbidden, Gone, Invalid, NotFound
from chute.images.body import Body, StreamBody
from chute.images.copies import copy_to_store
from chute.images.data import ImageData, received_columns
from chute.images.import_filter import Target, validate
from chute.images.options import ImportSettings
from chute.images.status import (
    FAILED_IMPORT,
    IMPORT_LOCK,
    IMPORT_STAGED,
    IMPORT_WEB,
    IMPORTING,
    IMPORTING_TO_STORES,
    STAGE,
    UPLOADING,
)
from chute.images.stores_service import NOT_MULTI, unknown_store
from chute.images.tasks_db import Task, TaskOrigin, TasksDB

if TYPE_CHECKING:
    import urllib3

LOG = logging.getLogger(__name__)

FETCH_CONNECT_TIMEOUT = 30  # seconds
FETCH_READ_TIMEOUT = 300  # seconds without a byte from the server


class ImportService:
    def __init__(self, data: ImageData, settings: ImportSettings) -> None:
        self.data = data
        self.settings = settings
        self.db = data.db
        self.tasks = TasksDB(data.db.engine)

    def stage(self, image_id: str, body: Body, declared: int | None) -> None:
        """queued -> uploading with the bytes in the staging area and their results recorded,
        under the image's upload claim (chute.images.claims), as an upload."""
        with self.data.claimed(image_id, STAGE.target):
            self._stage(image_id, body, declared)

    def _stage(self, image_id: str, body: Body, declared: int | None) -> None:
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

    def start(self, image_id: str, body: object, origin: TaskOrigin,
              header_store: str | None = None) -> None:
        """Check the request, then run the import (glance-direct) or start it (web-download,
        copy-image). `header_store`: the request's `X-Image-Meta-Store`."""
        method, uri = self._method(body)
        assert isinstance(body, dict)  # _method checked it
        record = self.data.service.get(image_id)
        if method == "copy-image":
            if record.status != "active":
                raise Conflict("Only images with status active can be targeted for copying")
        elif record.status == "active":
            raise Conflict("Image with status active cannot be target for import")
        if method == "glance-direct" and record.status != UPLOADING:
            raise Conflict("Image needs to be staged before 'glance-direct' method can be used")
        if method == "web-download" and record.status != "queued":
            raise Conflict(f"Image needs to be in 'queued' state to use '{method}' method")
        if not record.container_format:
            raise Conflict("'container_format' needs to be set before import")
        if not record.disk_format:
            raise Conflict("'disk_format' needs to be set before import")
        if method == "web-download":
            target = validate(uri or "", self.settings)
        stores = self._stores(body, header_store)
        must_succeed = bool(body.get("all_stores_must_succeed", True))
        task_id = str(uuid.uuid4())
        task_input = {"image_id": image_id, "import_req": body,
                      "backend": stores if self.data.store.multi else None}
        if method == "copy-image":
            self._start_copy(record, body, stores, must_succeed, task_id, task_input, origin)
            return
        first, rest = stores[0], stores[1:]
        if method == "glance-direct":
            self.tasks.create(task_id, image_id, task_input, origin)
            with ExitStack() as claim:
                try:
                    claim.enter_context(self.data.claimed(image_id, IMPORTING))
                    self._import_staged(image_id, task_id, first, rest)
                except ChuteError as exc:
                    self.tasks.finish(task_id, None, exc.message)
                    raise
                if rest:  # the copies' thread takes the claim over, never released between
                    self._copy_in_thread(claim.pop_all(), image_id, rest, must_succeed, task_id)
                    return
            self.tasks.finish(task_id, {"image_id": image_id})
            return
        with ExitStack() as claim:
            claim.enter_context(self.data.claimed(image_id, IMPORTING))
            started = self.data.start(image_id, None, IMPORT_WEB)
            LOG.info("image %s: queued -> importing (web-download of %s)", image_id, uri)
            self.tasks.create(task_id, image_id, task_input, origin)
            self._lock(image_id, task_id, stores)
            threading.Thread(target=self._web_download_claimed,
                             args=(claim.pop_all(), started, uri, target, task_id, first, rest,
                                   must_succeed),
                             name=f"import-{image_id}", daemon=True).start()

    def _web_download_claimed(self, claim: ExitStack, record: Any, uri: str, target: Target,
                              task_id: str, store_id: str | None, rest: Sequence[str | None],
                              must_succeed: bool) -> None:
        """The web-download, then the claim the request took is released: by this thread,
        once the outcome is recorded."""
        with claim:
            self._web_download(record, uri, target, task_id, store_id, rest, must_succeed)

    # -- several stores ------------------------------------------------------------------------

    def _stores(self, body: dict[str, Any], header: str | None) -> list[str | None]:
        """The stores an import writes to, by Glance's get_stores_from_request: `all_stores`,
        else `stores`, else `X-Image-Meta-Store`, else the default; [None] with one store."""
        backends = self.data.store
        if not backends.multi:
            return [None]
        stores: list[str | None]
        if body.get("all_stores", False):
            if "stores" in body or header is not None:
                raise Invalid("All_stores parameter can't be used with x-image-meta-store "
                              "header or stores parameter")
            stores = list(backends.ids)
        elif "stores" in body:
            if header is not None:
                raise Invalid("Stores parameter and x-image-meta-store header can't be both "
                              "specified")
            given = body["stores"]
            if not isinstance(given, list) or not all(isinstance(s, str) for s in given):
                raise Invalid("'stores' must be a list of store ids")
            stores = list(dict.fromkeys(given))
        else:
            stores = [header.strip() if header is not None else backends.default_id]
        for store_id in stores:
            if store_id not in backends.ids:
                raise Conflict(unknown_store(str(store_id)))
        if not stores:
            raise Invalid("'stores' must name at least one store")
        return stores

    def _start_copy(self, record: Any, body: dict[str, Any], stores: list[str | None],
                    must_succeed: bool, task_id: str, task_input: dict[str, Any],
                    origin: TaskOrigin) -> None:
        """copy-image: the stores the image is not in yet, copied in a thread after the 202,
        under the image's claim (module docstring)."""
        image_id: str = record.id
        if not self.data.store.multi:
            raise Invalid(NOT_MULTI)
        busy = Conflict(f"New operation on image '{image_id}' is not permitted as prior "
                        "operation is still in progress")
        with ExitStack() as claim:
            if not claim.enter_context(self.data.holding(image_id)):
                raise busy
            # Read again with the claim held: taking over a dead node's copy changed it.
            record = self.data.service.get(image_id)
            if record.status != "active":
                raise Conflict("Only images with status active can be targeted for copying")
            self._lock_copy(claim, record, body, stores, must_succeed, task_id, task_input,
                            origin, busy)

    def _lock_copy(self, claim: ExitStack, record: Any, body: dict[str, Any],
                   stores: list[str | None], must_succeed: bool, task_id: str,
                   task_input: dict[str, Any], origin: TaskOrigin, busy: Conflict) -> None:
        """Take the image's import lock for the stores it is not in yet and start their copy,
        handing `claim` to the copying thread."""
        image_id: str = record.id
        present = {loc.metadata.get("store") for loc in record.locations}
        if body.get("all_stores", False):
            stores = [s for s in stores if s not in present]
            if not stores:
                LOG.info("image %s: already in every store; nothing to copy", image_id)
                return
        else:
            for store_id in stores:
                if store_id in present:
                    raise Invalid(f"Image is already present at store '{store_id}'")
        if record.properties.get(IMPORT_LOCK):
            raise busy
        # The lock is taken on the version read: of two copies racing, one gets it, the other
        # a 409, so no two threads ever write the same store's file of this image (on one
        # node, where every claim is granted, this is what keeps them apart).
        lock: dict[str, str | None] = {
            IMPORT_LOCK: task_id, IMPORTING_TO_STORES: ",".join(str(s) for s in stores),
            FAILED_IMPORT: ""}
        if not self.db.set_properties(image_id, lock, expect_version=record.version):
            raise busy
        self.tasks.create(task_id, image_id, task_input, origin)
        self._copy_in_thread(claim.pop_all(), image_id, stores, must_succeed, task_id)

    def _copy_in_thread(self, claim: ExitStack, image_id: str, stores: Sequence[str | None],
                        must_succeed: bool, task_id: str) -> None:
        """Copy in a thread that releases `claim` (the image's) once the task has ended."""
        threading.Thread(target=self._copy_all_claimed,
                         args=(claim, image_id, stores, must_succeed, task_id),
                         name=f"copy-{image_id}", daemon=True).start()

    def _copy_all_claimed(self, claim: ExitStack, image_id: str, stores: Sequence[str | None],
                          must_succeed: bool, task_id: str) -> None:
        with claim:
            self._copy_all(image_id, stores, must_succeed, task_id)

    def _copy_all(self, image_id: str, stores: Sequence[str | None], must_succeed: bool,
                  task_id: str) -> None:
        """Copy to each store in turn; `os_glance_importing_to_stores` lists those left and
        `os_glance_failed_import` those that failed, as in Glance. With
        `all_stores_must_succeed` the first failure ends the task (the copies made stay: each
        was verified)."""
        left = [s for s in stores if s]
        failed: list[str] = []
        for store_id in list(left):
            try:
                copy_to_store(self.data, image_id, store_id)
            except Exception as exc:  # the thread's end: whatever failed is recorded
                if not isinstance(exc, (ChuteError, OSError)):
                    LOG.exception("image %s: copying to store %s failed", image_id, store_id)
                reason = getattr(exc, "message", None) or str(exc) or type(exc).__name__
                LOG.warning("image %s: copy to store %s failed (%s)", image_id, store_id,
                            reason)
                failed.append(store_id)
                if must_succeed:
                    left.remove(store_id)
                    self.tasks.finish(task_id, None, f"store {store_id}: {reason}")
                    self.db.set_properties(image_id, {IMPORT_LOCK: None,
                                                      IMPORTING_TO_STORES: ",".join(left),
                                                      FAILED_IMPORT: ",".join(failed)})
                    return
            left.remove(store_id)
            self.db.set_properties(image_id, {IMPORTING_TO_STORES: ",".join(left),
                                              FAILED_IMPORT: ",".join(failed)})
        self.tasks.finish(task_id, {"image_id": image_id})
        self.db.set_properties(image_id, {IMPORT_LOCK: None})

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
        multi = self.data.store.multi
        if body.get("all_stores_must_succeed", True) is False and not multi:
            raise Invalid("All_stores_must_succeed can only be set with enabled_backends")
        if body.get("stores") and not multi:
            raise Invalid("Multi backend is not supported at this site: 'stores' cannot be "
                          "given.")
        uri = method.get("uri")
        if name == "web-download" and not isinstance(uri, str):
            raise Invalid("URI for web-download does not pass filtering: None")
        return name, uri

    def _lock(self, image_id: str, task_id: str, stores: Sequence[str | None] = ()) -> None:
        self.db.set_properties(image_id, {IMPORT_LOCK: task_id,
                                          IMPORTING_TO_STORES: ",".join(s for s in stores if s),
                                          FAILED_IMPORT: ""})

    def _import_staged(self, image_id: str, task_id: str, store_id: str | None = None,
                       rest: Sequence[str | None] = ()) -> None:
        """uploading -> importing -> active: the staged file renamed into the store (the
        default store, where it was staged), or written through the upload path into another
        one (`store_id`); `rest` are the stores copied to next (in a thread)."""
        record = self.data.service.get(image_id)
        formats = {"disk_format": record.disk_format,
                   "container_format": record.container_format}
        if not self.db.cas_status(image_id, IMPORT_STAGED.source, IMPORT_STAGED.target,
                                  unchanged=formats):
            raise Conflict(f"New operation on image '{image_id}' is not permitted as prior "
                           "operation is still in progress")
        self._lock(image_id, task_id, [store_id, *rest])
        if store_id is not None and store_id != self.data.store.default_id:
            self._import_staged_into(record, store_id)
            self._imported(image_id, rest)
            return
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
        self._imported(image_id, rest)
        LOG.info("image %s: uploading -> importing -> active (glance-direct, %s)", image_id,
                 location.url)

    def _imported(self, image_id: str, rest: Sequence[str | None]) -> None:
        """The first store holds the image: the lock goes, unless copies to `rest` follow."""
        if rest:
            self.db.set_properties(image_id, {IMPORTING_TO_STORES: ",".join(s for s in rest if s)})
        else:
            self.db.set_properties(image_id, {IMPORT_LOCK: None, IMPORTING_TO_STORES: ""})

    def _import_staged_into(self, record: Any, store_id: str) -> None:
        """The staged bytes written into `store_id` through the upload's path (another
        filesystem than the staging area's: a copy, verified as any upload)."""
        image_id: str = record.id
        staged = self.data.store.default.staged_path(image_id)
        if staged is None:
            self._failed(image_id, "the staged data is gone")
            raise Conflict(f"Image {image_id}: the staged data could not be imported")
        try:
            with open(staged, "rb", buffering=0) as source:
                self.data.store_and_activate(record, StreamBody(source), record.size,
                                             IMPORTING, store_id)
        except ChuteError as exc:
            self._failed(image_id, exc.message)
            raise
        self.data.store.unstage(image_id)

    def _failed(self, image_id: str, reason: str) -> None:
        self.db.requeue(image_id, IMPORTING)
        self.data.store.unstage(image_id)
        self.db.set_properties(image_id, {IMPORT_LOCK: None, FAILED_IMPORT: reason})
        LOG.warning("image %s: import failed (%s); back to queued", image_id, reason)

    def _web_download(self, record: Any, uri: str, target: Target, task_id: str,
                      store_id: str | None = None, rest: Sequence[str | None] = (),
                      must_succeed: bool = True) -> None:
        image_id = record.id
        try:
            with _fetch(target) as response:
                declared = response.headers.get("Content-Length")
                self.data.store_and_activate(
                    record, StreamBody(response), int(declared) if declared else None,
                    IMPORTING, store_id)
        except Exception as exc:  # the thread's end: whatever failed, the image is given back
            if not isinstance(exc, (ChuteError, OSError, _http_error())):
                LOG.exception("image %s: web-download of %s failed", image_id, uri)
            reason = getattr(exc, "message", None) or str(exc) or type(exc).__name__
            self.db.requeue(image_id, IMPORTING)
            self.tasks.finish(task_id, None, f"{uri}: {reason}")
            self.db.set_properties(image_id, {IMPORT_LOCK: None, FAILED_IMPORT: f"{uri}: {reason}"})
            LOG.warning("image %s: web-download of %s failed (%s); back to queued", image_id,
                        uri, reason)
            return
        if rest:
            self.db.set_properties(image_id, {IMPORTING_TO_STORES: ",".join(s for s in rest if s)})
            self._copy_all(image_id, rest, must_succeed, task_id)
            return
        # The task ends before the lock goes: whoever sees the import over sees its task over.
        self.tasks.finish(task_id, {"image_id": image_id})
        self.db.set_properties(image_id, {IMPORT_LOCK: None})


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


def _http_error() -> type[Exception]:
    """urllib3's base error, for telling a failed fetch from a bug (imported by then: only a
    fetch raises it)."""
    from urllib3.exceptions import HTTPError

    return HTTPError


def _fetch(target: Target) -> _Response:
    """GET the target from an address the filter returned (never resolving the name again),
    following no redirect: a redirect's location has not passed the filter.

    urllib3 is imported here, by the first web-download: ~1 MiB of RSS in each worker that
    most services (glance-direct, uploads) never use (chute.images.main on memory)."""
    import urllib3

    timeout = urllib3.Timeout(connect=FETCH_CONNECT_TIMEOUT, read=FETCH_READ_TIMEOUT)
    pool: urllib3.HTTPConnectionPool
    if target.scheme == "https":
        pool = urllib3.HTTPSConnectionPool(target.addresses[0], target.port,
                                           server_hostname=target.host,
                                           assert_hostname=target.host,
                                           timeout=timeout, retries=False)
    else:
        pool = urllib3.HTTPConnectionPool(target.addresses[0], target.port,
                                          timeout=timeout, retries=False)
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
