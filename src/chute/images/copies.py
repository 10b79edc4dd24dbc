"""Copying an active image's data into one more store (Glance's `copy-image`), verified.

The bytes are read from a location the image already has and go through the upload's one path
(chute.images.data.receive: hashes, format inspection, O_DIRECT writes, the temporary name), so
a copy is checked exactly as an upload is. The new location is added only if the copy's size and
every digest the image records (MD5, the multihash, the block digest) are the image's, and only
while the image is still active with those values (chute.images.db.add_location): a source that
changed, a wrong read or a bad disk never becomes a second location.
"""

from __future__ import annotations

import logging
import os
from functools import partial
from typing import Any

from chute.errors import Conflict, Gone, ImageError
from chute.images.body import StreamBody
from chute.images.data import ImageData, received_columns
from chute.images.status import ACTIVE
from chute.stores import StoredLocation

LOG = logging.getLogger(__name__)

# The columns a copy must reproduce; os_hash_value only when hashed with the image's algorithm.
VERIFIED = ("size", "checksum", "os_hash_algo", "os_hash_value", "chute_blake3_blocks")


class CopyMismatch(ImageError):
    """The copy's bytes are not the image's: it was removed, never recorded."""


def _verified(image: dict[str, Any], copy: dict[str, Any]) -> dict[str, Any]:
    """The image's recorded values the copy matched (all that the image has); CopyMismatch
    naming the first that differs."""
    checked: dict[str, Any] = {}
    for name in VERIFIED:
        want = image.get(name)
        if want is None:
            continue
        if name == "os_hash_value" and image.get("os_hash_algo") != copy.get("os_hash_algo"):
            continue  # hashed with another algorithm than today's: MD5 and blocks still hold
        if copy.get(name) != want:
            raise CopyMismatch(f"the copy's {name} is {copy.get(name)}, the image's {want}")
        checked[name] = want
    if "size" not in checked:
        raise CopyMismatch("the image records no size to verify a copy against")
    return checked


def _drop_orphan(data: ImageData, record: Any, store_id: str) -> None:
    """Remove the file a copy interrupted between its link and its database record left in
    `store_id` (recovery at start removes only the temporary name): it is no location of the
    image, and it would make every later copy to that store fail. The caller holds the image's
    import lock (os_glance_import_task), so no other copy of this image is under way."""
    store = data.store.get(store_id)
    path = os.path.join(store.datadirs[0].path, record.id)
    url = "file://" + path
    if os.path.lexists(path) and all(loc.url != url for loc in record.locations):
        LOG.warning("image %s: removing %s, left by an interrupted copy to store %s",
                    record.id, path, store_id)
        store.delete(url)


def copy_to_store(data: ImageData, image_id: str, store_id: str) -> StoredLocation:
    """Write the active image's data into `store_id`, verify it, add the location."""
    found = data.service.first_readable(
        image_id, lambda store, url: store.open(url), "not copying it",
        discard=lambda opened: opened.fileobj.close())
    if found is None:
        raise Gone(f"Image {image_id} has no readable data to copy")
    record, opened = found
    _drop_orphan(data, record, store_id)
    with opened.fileobj as source:
        received, location, writer = data.receive(
            record, StreamBody(source), opened.size,
            partial(data.store.writer, store_id=store_id), ACTIVE)
    try:
        verified = _verified(record.columns, received_columns(received))
        if not data.db.add_location(image_id, location, verified):
            raise Conflict(f"Image {image_id} changed or was deleted while it was being "
                           f"copied to store {store_id}")
    except BaseException:
        data.store.delete(location.url)
        writer.settle()
        raise
    writer.settle()
    LOG.info("image %s: copied to store %s (%s, %d bytes, verified)", image_id, store_id,
             location.url, received.size)
    return location
