"""Image data: the upload state machine (queued -> saving -> active) and opening downloads.

Every failure path ends the same way: the temporary file is removed, the image goes back to
`queued` with size and hashes cleared (compare-and-swap from `saving`), and nothing is left in
the store - not even after a 415, where Glance 33 keeps the data.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from chute.errors import Conflict, Gone, Invalid, NotFound, TooLarge
from chute.images.body import Body
from chute.images.db import Database, ImageRecord
from chute.images.options import UploadSettings
from chute.images.service import CAS_ATTEMPTS, ImageService
from chute.images.status import QUEUED, SAVING
from chute.images.upload import Limits, Received, receive
from chute.stores import Opened, Store, StoredLocation, Writer

LOG = logging.getLogger(__name__)


def _formats(record: ImageRecord) -> dict[str, str | None]:
    return {"disk_format": record.disk_format, "container_format": record.container_format}


@dataclass(frozen=True)
class Download:
    opened: Opened
    checksum: str | None


class ImageData:
    def __init__(self, settings: UploadSettings, service: ImageService, store: Store) -> None:
        self.settings = settings
        self.service = service
        self.db: Database = service.db
        self.store = store

    def upload(self, image_id: str, body: Body, declared: int | None) -> None:
        record = self._start(image_id, declared)
        formats = _formats(record)
        LOG.info("image %s: queued -> saving (declared size %s)", image_id, declared)
        try:
            received, location, writer = self._store_data(record, body, declared)
        except BaseException as exc:
            self.db.requeue(image_id)
            LOG.warning("image %s: upload failed (%s); back to queued, nothing stored",
                        image_id, getattr(exc, "message", None) or type(exc).__name__)
            raise
        columns = {"size": received.size, "checksum": received.checksum,
                   "os_hash_algo": received.os_hash_algo, "os_hash_value": received.os_hash_value,
                   "chute_blake3_blocks": received.blake3_blocks,
                   "virtual_size": received.format.virtual_size if received.format else None}
        # The formats the bytes were inspected as are part of the compare-and-swap: an image is
        # never active with formats its data was not checked against (a PATCH cannot change
        # them once saving, chute.images.service; this holds even if that rule is broken).
        activated = self.db.activate(image_id, columns, location, unchanged=formats)
        # Only once the database has the outcome: if activate() raised, the temporary name
        # still marks the upload as this host's for the next start's recovery.
        writer.settle()
        if not activated:
            self.store.delete(location.url)
            self.db.requeue(image_id)
            current = self.db.get(image_id)
            if current is not None and _formats(current) != formats:
                raise Conflict(f"The formats of image {image_id} changed during the upload; "
                               "it is queued again, upload its data again.")
            raise Gone(f"Image {image_id} could not be found after upload. The image may have "
                       "been deleted during the upload, cleaning up the chunks uploaded.")
        LOG.info("image %s: saving -> active (%d bytes, %s)", image_id, received.size,
                 location.url)

    def _start(self, image_id: str, declared: int | None) -> ImageRecord:
        """queued -> saving, conditional on the formats being those read: the record returned
        is the one the upload inspects and stores against. A PATCH that changed the formats
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
            if self.db.cas_status(image_id, QUEUED, SAVING, unchanged=_formats(record)):
                return record
            current = self.db.get(image_id)
            if current is None:
                raise NotFound(f"No image found with ID {image_id}")
            if current.status != QUEUED:
                raise Conflict(f"Image status transition from {current.status} to saving is "
                               "not allowed")
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

    def _store_data(self, image: ImageRecord, body: Body,
                    declared: int | None) -> tuple[Received, StoredLocation, Writer]:
        image_id: str = image.id
        settings = self.settings
        limits = Limits(declared, settings.size_cap,
                        self._quota_left(image.owner, image_id, declared))
        writer = self.store.writer(image_id, declared or 0)
        started = time.monotonic()
        try:
            received = receive(
                body, writer, limits, hashing_algorithm=settings.hashing_algorithm,
                inspect_as=image.disk_format if image.container_format == "bare" else None,
                require_format_match=settings.require_format_match,
                chunk_size=settings.chunk_size,
                keep_going=lambda _n: self._still_wanted(image_id))
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

    def _still_wanted(self, image_id: str) -> None:
        current = self.db.get(image_id)
        if current is None or current.status != SAVING:
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
