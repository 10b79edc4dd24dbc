"""What interrupted uploads leave behind, found and undone: at start, and when an upload finds
its image left `saving` by a node that died.

One node (SQLite): every `saving` or `importing` image at start is a crash's leftover, and so
is every temporary file this host wrote. Several nodes (PostgreSQL): an image is only touched
with its upload claim held (chute.images.claims), which no live upload can have, so another
node's upload in progress is never disturbed, however long it takes, whatever host wrote it.
A stage (`uploading`) holds the claim too and is taken over the same way until its bytes are
recorded; a finished stage waits for its import. An import (`importing`: a web-download's
thread, a glance-direct import) holds the claim from before `-> importing` to its outcome, so
an image `importing` whose claim is free was left by a dead node: its files go, the image is
queued again with the reason in `os_glance_failed_import`, and its import task ends failed.
A copy-image task holds the claim too, for as long as its thread copies (chute.images.imports):
an image at rest with an import lock and a free claim was being copied by a dead node, so its
temporary files go, its task ends failed and the lock is released (the stores it was still
copying to are added to `os_glance_failed_import`, as Glance lists a failed copy's stores); a
copy whose node lives is never touched, whichever node starts up meanwhile.
"""

from __future__ import annotations

import logging

from chute.images.claims import UploadClaims
from chute.images.db import Database, ImageRecord
from chute.images.status import (
    ACTIVE,
    DEACTIVATED,
    DELETED,
    FAILED_IMPORT,
    IMPORT_LOCK,
    IMPORTING,
    IMPORTING_TO_STORES,
    KILLED,
    QUEUED,
    SAVING,
    UPLOADING,
)
from chute.images.tasks_db import TasksDB
from chute.stores.base import Store

LOG = logging.getLogger("chute.images")
# Statuses in which no upload writes: a temporary file of such an image is a leftover.
_AT_REST = (ACTIVE, DEACTIVATED, DELETED, KILLED)
INTERRUPTED = "interrupted: the chute-api node running the import stopped"


def take_over(db: Database, store: Store, image_id: str) -> list[str]:
    """With the claim of `image_id` held: if it is `saving`, its uploader is dead; remove what
    it wrote and requeue the image. Returns the paths removed."""
    current = db.get(image_id, include_deleted=True)
    if current is None:
        return []
    if current.status == SAVING:
        removed = store.abandon(image_id, final=True)
        db.requeue(image_id, SAVING)
        # The line a single node logs at start for the same leftover: operators grep for it.
        LOG.warning("image %s was left in 'saving' by a crash; it is 'queued' again", image_id)
        return removed
    if current.status == UPLOADING and current.size is None:  # staging never finished
        removed = store.abandon(image_id, final=False)
        store.unstage(image_id)
        db.requeue(image_id, UPLOADING)
        LOG.warning("image %s was left 'uploading' by a crash mid-stage; it is 'queued' again",
                    image_id)
        return removed
    if current.status == IMPORTING:
        removed = store.abandon(image_id, final=True)
        if db.requeue(image_id, IMPORTING):
            task_id = current.properties.get(IMPORT_LOCK)
            if task_id:
                TasksDB(db.engine).finish(str(task_id), None, INTERRUPTED)
            db.set_properties(image_id, {IMPORT_LOCK: None, FAILED_IMPORT: INTERRUPTED})
            LOG.warning("image %s was left 'importing' by a crash; it is 'queued' again",
                        image_id)
        return removed
    if current.status == QUEUED:  # a final-named file a queued image never owns
        return store.abandon(image_id, final=True)
    if current.status in _AT_REST:  # settle() never ran: only the temporary name is left
        removed = store.abandon(image_id, final=False)
        if current.properties.get(IMPORT_LOCK):
            end_interrupted_copy(db, current)
        return removed
    return []


def end_interrupted_copy(db: Database, image: ImageRecord) -> None:
    """The copy-image task whose lock `image` still holds ran on a node that is gone (the
    caller holds the claim, or this node is the only one and is starting): its task ends
    failed, the stores it had left join the failed ones, and the lock goes, so that the copy
    can be asked for again. A copy's file in a target store without a location is removed by
    that next copy (chute.images.copies)."""
    task_id = str(image.properties[IMPORT_LOCK])
    TasksDB(db.engine).finish(task_id, None, INTERRUPTED)
    failed = [s for s in (image.properties.get(FAILED_IMPORT) or "").split(",") if s]
    left = [s for s in (image.properties.get(IMPORTING_TO_STORES) or "").split(",") if s]
    db.set_properties(image.id, {IMPORT_LOCK: None, IMPORTING_TO_STORES: "",
                                 FAILED_IMPORT: ",".join(dict.fromkeys(failed + left))})
    LOG.warning("image %s: its copy to stores %s was interrupted by a crash; the copy can be "
                "started again", image.id, ",".join(left) or "(none left)")


def recover_shared(db: Database, store: Store) -> list[str]:
    """Several nodes: every image `saving`, `uploading` (not staged yet), `queued`, at rest
    with a copy's import lock, or with a temporary file, whose claim is free (nobody uploads
    or copies it), is taken over. Returns the paths removed."""
    removed: list[str] = []
    claims = UploadClaims(db.engine)
    candidates = set(db.in_flight_ids()) | set(db.copying_ids()) | store.partial_ids()
    for image_id in sorted(candidates):
        with claims.hold(image_id) as held:
            if held:
                removed += take_over(db, store, image_id)
    for image_id in db.queued_ids():  # a final-named file no queued image owns
        with claims.hold(image_id) as held:
            if held:
                removed += take_over(db, store, image_id)
    return removed


def recover_single(db: Database, store: Store) -> list[str]:
    """One node: whatever is in flight at start was interrupted by a crash."""
    removed = store.recover()
    for image_id in db.reset_saving():
        LOG.warning("image %s was left in 'saving' by a crash; it is 'queued' again", image_id)
    for image_id in db.reset_importing("interrupted by a restart of chute-api"):
        LOG.warning("image %s was left 'importing' by a restart; it is 'queued' again",
                    image_id)
    for image_id in db.copying_ids():
        copied = db.get(image_id)
        if copied is not None:
            end_interrupted_copy(db, copied)
    # Every queued image, not only those requeued just now: a crash during an earlier start's
    # recovery (after the requeue, before the removal) leaves a final-named file that a queued
    # image never legitimately has, and it would make every retried upload fail.
    removed.update(store.recover(db.queued_ids()))
    return list(removed)


def recover(db: Database, store: Store) -> list[str]:
    """Undo what interrupted uploads left (before serving); returns the paths removed."""
    removed = recover_single(db, store) if db.single_node else recover_shared(db, store)
    for path in removed:
        LOG.warning("removed temporary file %s left by an interrupted upload", path)
    return removed
