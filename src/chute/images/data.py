"""Image data: the upload state machine (queued -> saving -> active) and opening downloads.

Every failure path ends the same way: the temporary file is removed, the image goes back to
`queued` with size and hashes cleared (compare-and-swap from `saving`), and nothing is left in
the store - not even after a 415, where Glance 33 keeps the data.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass

from chute.config import Config
from chute.errors import Conflict, Forbidden, Gone, Invalid, NotFound, TooLarge
from chute.images.body import Body
from chute.images.db import CLEARED, Database, Location
from chute.images.service import ImageService
from chute.images.upload import Limits, Received, receive
from chute.stores import Opened, Store, Writer, for_url

LOG = logging.getLogger(__name__)

_UNITS = {"": 1, "B": 1, "KB": 1 << 10, "MB": 1 << 20, "GB": 1 << 30, "TB": 1 << 40}


def parse_quota(raw: str) -> int:
    """`user_storage_quota` as bytes (Glance's `^\\d+((K|M|G|T)?B)?$`, binary units)."""
    match = re.fullmatch(r"\s*(\d+)\s*((?:K|M|G|T)?B)?\s*", raw or "0")
    if match is None:
        raise ValueError(f"{raw!r} is not a size (use e.g. 0, 500MB, 2GB)")
    return int(match.group(1)) * _UNITS[match.group(2) or ""]


@dataclass(frozen=True)
class Download:
    opened: Opened
    checksum: str | None


class ImageData:
    def __init__(self, conf: Config, service: ImageService, store: Store) -> None:
        self.service = service
        self.db: Database = service.db
        self.store = store
        self.size_cap = conf.get("DEFAULT", "image_size_cap")
        self.quota = parse_quota(conf.get("DEFAULT", "user_storage_quota"))
        self.hashing_algorithm = conf.get("DEFAULT", "hashing_algorithm")
        self.chunk_size = conf.get("glance_store", "filesystem_store_chunk_size")
        self.require_match = conf.get("image_format", "require_image_format_match")

    def upload(self, image_id: str, body: Body, declared: int | None) -> None:
        record = self.service.get(image_id)
        if not record.disk_format or not record.container_format:
            raise Invalid("Properties disk_format, container_format must be set prior to "
                          "saving data.")
        if declared is not None and declared > self.size_cap:
            raise TooLarge(f"The incoming image is too large: {declared} bytes exceeds "
                           f"image_size_cap ({self.size_cap} bytes)")
        if not self.db.cas_status(image_id, "queued", "saving"):
            current = self.db.get(image_id)
            if current is None:
                raise NotFound(f"No image found with ID {image_id}")
            raise Conflict(f"Image status transition from {current.status} to saving is not "
                           "allowed")
        LOG.info("image %s: queued -> saving (declared size %s)", image_id, declared)
        try:
            received, location, writer = self._store_data(record.columns, body, declared)
        except BaseException as exc:
            self.db.cas_status(image_id, "saving", "queued", **CLEARED)
            LOG.warning("image %s: upload failed (%s); back to queued, nothing stored",
                        image_id, getattr(exc, "message", None) or type(exc).__name__)
            raise
        columns = {"size": received.size, "checksum": received.checksum,
                   "os_hash_algo": received.os_hash_algo, "os_hash_value": received.os_hash_value,
                   "chute_blake3_blocks": received.blake3_blocks,
                   "virtual_size": received.format.virtual_size if received.format else None}
        activated = self.db.activate(image_id, columns, location)
        # Only once the database has the outcome: if activate() raised, the temporary name
        # still marks the upload as this host's for the next start's recovery.
        writer.settle()
        if not activated:
            self.store.delete(location.url)
            self.db.cas_status(image_id, "saving", "queued", **CLEARED)
            raise Gone(f"Image {image_id} could not be found after upload. The image may have "
                       "been deleted during the upload, cleaning up the chunks uploaded.")
        LOG.info("image %s: saving -> active (%d bytes, %s)", image_id, received.size,
                 location.url)

    def _quota_left(self, owner: str | None, image_id: str, declared: int | None) -> int | None:
        if self.quota <= 0:
            return None
        left = self.quota - self.db.usage(owner, image_id)
        if left <= 0 or (declared is not None and declared > left):
            raise TooLarge(f"Image exceeds the storage quota: {max(left, 0)} bytes left of "
                           f"{self.quota}")
        return left

    def _store_data(self, image: dict, body: Body,
                    declared: int | None) -> tuple[Received, Location, Writer]:
        image_id = image["id"]
        limits = Limits(declared, self.size_cap,
                        self._quota_left(image["owner"], image_id, declared))
        writer = self.store.writer(image_id, declared or 0)
        started = time.monotonic()
        try:
            received = receive(
                body, writer, limits, hashing_algorithm=self.hashing_algorithm,
                inspect_as=image["disk_format"] if image["container_format"] == "bare" else None,
                require_format_match=self.require_match, chunk_size=self.chunk_size,
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
        return received, Location(stored.url, stored.metadata), writer

    def _still_wanted(self, image_id: str) -> None:
        current = self.db.get(image_id)
        if current is None or current.status != "saving":
            raise Gone(f"Image {image_id} could not be found after upload. The image may have "
                       "been deleted during the upload, cleaning up the chunks uploaded.")

    def open(self, image_id: str) -> Download | None:
        """The first readable location of the image; None when it has no data (204)."""
        record = self.service.get(image_id)
        if record.status == "deactivated":
            raise Forbidden("The requested image has been deactivated. Image data download is "
                            "forbidden.")
        for location in record.locations:
            store = for_url(self.service.stores, location.url)
            opened = store.open(location.url) if store is not None else None
            if opened is None:
                continue
            if record.size is not None and opened.size != record.size:
                # Never serve bytes that cannot be the image (truncated or replaced file).
                LOG.error("image %s: %s holds %d bytes, the image has %d; not serving it",
                          image_id, location.url, opened.size, record.size)
                opened.fileobj.close()
                continue
            return Download(opened, record.checksum)
        return None
