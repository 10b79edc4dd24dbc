"""Where an image's bytes may be read from, in the order to try them.

Glance's `locations` first (they carry the filesystem metadata the shared-filesystem path
needs), falling back to the service-only `GET /v2/images/{id}/locations` when the document
hides them (`show_multiple_locations = false`), then `direct_url` with empty metadata. Nova
tried a URL present in both twice, the second time without metadata
(docs/architecture.md#nova-candidates): we keep the first occurrence only.

With several stores (Glance's `enabled_backends`) an image has one location per store, each
with its own filesystem's `{id, mountpoint}`: the locations on a filesystem this host mounts
come first, so a host that mounts only the second store copies from it directly instead of
first being refused the first store's (and the order among the rest stays Glance's).
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable

from chute.client.image import Image, Location
from chute.compute.image_service import ImageService
from chute.errors import RemoteError

LOG = logging.getLogger("chute.compute.fetch")


def filesystem_id(location: Location) -> str | None:
    """The shared filesystem a location lies on (its metadata's `id`), if it says."""
    fs_id = location.metadata.get("id")
    return fs_id if isinstance(fs_id, str) and fs_id else None


def filesystem_ids(locations: Iterable[Location]) -> frozenset[str]:
    """The shared filesystems holding a copy of an image, by the `id`s in its locations'
    metadata: a host that mounts one of them can copy the image directly (the scheduler's
    image-aware weigher compares this with the ids a host reports)."""
    return frozenset(fs_id for fs_id in map(filesystem_id, locations) if fs_id is not None)


def image_filesystem_ids(image: Image, service: ImageService) -> frozenset[str]:
    """`filesystem_ids` of an image, from its document or else the locations endpoint."""
    return filesystem_ids(candidates(image, service))


def mounted_first(locations: list[Location], mounted: Collection[str]) -> list[Location]:
    """The locations on a filesystem in `mounted` first, each group in its own order."""
    return sorted(locations, key=lambda location: filesystem_id(location) not in mounted)


def candidates(image: Image, service: ImageService,
               mounted: Collection[str] = ()) -> list[Location]:
    """De-duplicated candidate locations, those on a `mounted` filesystem id first; the
    locations endpoint is asked only if needed."""
    found = list(image.locations)
    if not found:
        try:
            found = service.locations(image.id)
        except RemoteError as exc:
            LOG.info("Locations of image %s not available: %s", image.id, exc.message)
    if image.direct_url and all(location.url != image.direct_url for location in found):
        found.append(Location(image.direct_url))
    return mounted_first(found, mounted)
