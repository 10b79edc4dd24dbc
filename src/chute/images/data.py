"""Image data: the upload state machine (queued -> saving -> active) and opening downloads.

Every failure path ends the same way: the temporary file is removed, the image goes back to
`queued` with size and hashes cleared (compare-and-swap from `saving`), and nothing is left in
the store - not even after a 415, where Glance 33 keeps the data.

An upload holds its image's claim (chute.images.claims) from before `queued -> saving` until
its outcome is recorded. An upload to an image left `saving` by a node that died (its claim is
free) takes it over: the dead upload's files are removed, the image is requeued, and the new
upload starts as if the first had never been. A live upload's image answers 409, as in Glance.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any

from chute.errors import Conflict, Gone, Invalid, NotFound, TooLarge
from chute.images.body import Body
from chute.images.claims import UploadClaims
from chute.images.db import Database, ImageRecord
from chute.images.options import UploadSettings
from chute.images.recovery import take_over
from chute.images.service import CAS_ATTEMPTS, ImageService
from chute.images.status import SAVING, START_UPLOAD, Status, Transition
from chute.images.upload import Limits, Received, receive
from chute.stores import Opened, StoredLocation, Writer
from chute.stores.backends import Backends

LOG = logging.getLogger(__name__)


def _formats(record: ImageRecord) -> dict[str, str | None]:
    return {"disk_format": record.disk_format, "container_format": record.container_format}


def received_columns(received: Received) -> dict[str, Any]:
    """The image columns an upload's bytes determine."""
    return {"size": received.size, "checksum": received.checksum,
            "os_hash_algo": received.os_hash_algo, "os_hash_value": received.os_hash_value,
            "chute_blake3_blocks": received.blake3_blocks,
            "virtual_size": received.format.virtual_size if received.format else None}


@dataclass(frozen=True)
class Download:
    opened: Opened
    checksum: str | None


class ImageData:
    def __init__(self, settings: UploadSettings, service: ImageService, store: Backends) -> None:
        self.settings = settings
        self.service = service
        self.db: Database = service.db
        self.store = store
        self.claims = UploadClaims(service.db.engine)

    def upload(self, image_id: str, body: Body, declared: int | None,
               store_id: str | None = None) -> None:
        """`store_id`: the store of `enabled_backends` to write to (None: the default)."""
        with self.claimed(image_id, SAVING):
            record = self.start(image_id, declared, START_UPLOAD)
            LOG.info("image %s: queued -> saving (declared size %s)", image_id, declared)
            self.store_and_activate(record, body, declared, SAVING, store_id)

    @contextmanager
    def claimed(self, image_id: str, target: Status) -> Iterator[None]:
        """The block runs with the image's upload claim held, after taking over what a dead
        node's upload or stage left (several nodes); a live one holding it is Glance's 409 for
        a second upload."""
        with self.holding(image_id) as held:
            if not held:
                current = self.db.get(image_id)
                if current is None:
                    raise NotFound(f"No image found with ID {image_id}")
                raise Conflict(f"Image status transition from {current.status} to {target} is "
                               "not allowed: the image is being uploaded by another request")
            yield

    @contextmanager
    def holding(self, image_id: str) -> Iterator[bool]:
        """The image's upload claim for the block (False: a live process holds it). Once held
        on several nodes, what a dead node's upload, stage, import or copy left is taken over
        first (chute.images.recovery.take_over)."""
        with self.claims.hold(image_id) as held:
            if held and self.claims.shared:
                for path in take_over(self.db, self.store, image_id):
                    LOG.warning("removed temporary file %s left by an interrupted upload", path)
            yield held

    def store_and_activate(self, record: ImageRecord, body: Body, declared: int | None,
                           in_flight: Status, store_id: str | None = None) -> None:
        """Receive `body` into the store (`store_id`'s, else the default) and activate the
        image from `in_flight` (`saving` for an upload, `importing` for a web-download
        import): one path for every byte."""
        image_id: str = record.id
        formats = _formats(record)
        try:
            received, location, writer = self.receive(
                record, body, declared, partial(self.store.writer, store_id=store_id),
                in_flight)
        except BaseException as exc:
            self.db.requeue(image_id, in_flight)
            LOG.warning("image %s: upload failed (%s); back to queued, nothing stored",
                        image_id, getattr(exc, "message", None) or type(exc).__name__)
            raise
        # The formats the bytes were inspected as are part of the compare-and-swap: an image is
        # never active with formats its data was not checked against (a PATCH cannot change
        # them once saving, chute.images.service; this holds even if that rule is broken).
        activated = self.db.activate(image_id, received_columns(received), location,
                                     unchanged=formats, source=in_flight)
        # Only once the database has the outcome: if activate() raised, the temporary name
        # still marks the upload as this host's for the next start's recovery.
        writer.settle()
        if not activated:
            self.store.delete(location.url)
            self.db.requeue(image_id, in_flight)
            current = self.db.get(image_id)
            if current is not None and _formats(current) != formats:
                raise Conflict(f"The formats of image {image_id} changed during the upload; "
                               "it is queued again, upload its data again.")
            raise Gone(f"Image {image_id} could not be found after upload. The image may have "
                       "been deleted during the upload, cleaning up the chunks uploaded.")
        LOG.info("image %s: %s -> active (%d bytes, %s)", image_id, in_flight, received.size,
                 location.url)

    def start(self, image_id: str, declared: int | None, change: Transition) -> ImageRecord:
        """queued -> saving (or an import's uploading/importing), conditional on the formats
        being those read: the record returned is the one the upload inspects and stores
        against. A PATCH that changed the formats
        in between makes the swap fail; it is retried on the new formats."""
        size_cap = self.settings.size_cap
        for _attempt in range(CAS_ATTEMPTS):
            record = self.service.get(image_id)
            if not record.disk_format or not record.container_format:
                raise Invalid("Properties disk_format, container_format must be set prior to "
                              "saving data.")
            if declared is not None and declared > size_cap:
                raise TooLarge(f"The incoming image is too large: {declared} bytes exceeds "
                               f"image_size_cap ({size_cap} bytes)")
            if self.db.cas_status(image_id, change.source, change.target,
                                  unchanged=_formats(record)):
                return record
            current = self.db.get(image_id)
            if current is None:
                raise NotFound(f"No image found with ID {image_id}")
            if current.status != change.source:
                raise Conflict(f"Image status transition from {current.status} to "
                               f"{change.target} is not allowed")
        raise Conflict(f"Image {image_id} changed while its upload was starting; retry.")

    def _quota_left(self, owner: str | None, image_id: str, declared: int | None) -> int | None:
        quota = self.settings.quota
        if quota <= 0:
            return None
        left = quota - self.db.usage(owner, image_id)
        if left <= 0 or (declared is not None and declared > left):
            raise TooLarge(f"Image exceeds the storage quota: {max(left, 0)} bytes left of "
                           f"{quota}")
        return left

    def receive(self, image: ImageRecord, body: Body, declared: int | None,
                make_writer: Callable[[str, int], Writer],
                in_flight: Status) -> tuple[Received, StoredLocation, Writer]:
        """Limit, hash, inspect and write `body` through a writer of `make_writer` (the store's
        own, or its staging area's); the image must stay `in_flight` meanwhile."""
        image_id: str = image.id
        settings = self.settings
        limits = Limits(declared, settings.size_cap,
                        self._quota_left(image.owner, image_id, declared))
        writer = make_writer(image_id, declared or 0)
        started = time.monotonic()
        try:
            received = receive(
                body, writer, limits, hashing_algorithm=settings.hashing_algorithm,
                inspect_as=image.disk_format if image.container_format == "bare" else None,
                require_format_match=settings.require_format_match,
                chunk_size=settings.chunk_size,
                keep_going=lambda _n: self._still_wanted(image_id, in_flight))
            streamed = time.monotonic()
            stored = writer.commit()
        except BaseException:
            writer.abort()
            raise
        done = time.monotonic()
        LOG.info("image %s: %d bytes received and hashed in %.3f s (%.0f MB/s), synced and "
                 "linked in %.3f s", image_id, received.size, streamed - started,
                 received.size / max(streamed - started, 1e-9) / 1e6, done - streamed)
        return received, stored, writer

    def _still_wanted(self, image_id: str, in_flight: Status) -> None:
        current = self.db.get(image_id)
        if current is None or current.status != in_flight:
            raise Gone(f"Image {image_id} could not be found after upload. The image may have "
                       "been deleted during the upload, cleaning up the chunks uploaded.")

    def open(self, image_id: str) -> Download | None:
        """The first readable location of the image; None when it has no data (204)."""
        found = self.service.first_readable(
            image_id, lambda store, url: store.open(url), "not serving it",
            discard=lambda opened: opened.fileobj.close())
        if found is None:
            return None
        record, opened = found
        return Download(opened, record.checksum)
