"""Where an image's bytes may be read from, in the order to try them.

Glance's `locations` first (they carry the filesystem metadata the shared-filesystem path
needs), falling back to the service-only `GET /v2/images/{id}/locations` when the document
hides them (`show_multiple_locations = false`), then `direct_url` with empty metadata. Nova
tried a URL present in both twice, the second time without metadata
(docs/architecture.md#nova-candidates): we keep the first occurrence only.
"""

from __future__ import annotations

import logging

from chute.client.image import Image, Location
from chute.compute.image_service import ImageService
from chute.errors import RemoteError

LOG = logging.getLogger("chute.compute.fetch")


def candidates(image: Image, service: ImageService) -> list[Location]:
    """De-duplicated candidate locations; the locations endpoint is asked only if needed."""
    found = list(image.locations)
    if not found:
        try:
            found = service.locations(image.id)
        except RemoteError as exc:
            LOG.info("Locations of image %s not available: %s", image.id, exc.message)
    if image.direct_url and all(location.url != image.direct_url for location in found):
        found.append(Location(image.direct_url))
    return found
