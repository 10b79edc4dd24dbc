"""Where an image's data lies (a chute extension; Glance has no sparse transfer).

`GET /v2/images/{id}/extents` answers `{"size": N, "extents": [{"offset", "length"}, ...]}`:
the data segments of the stored file, everything else reading as zeros. A compute host asks
for them first and then fetches only those byte ranges of `/file`, so a 4 GiB raw disk holding
512 MiB of data moves 512 MiB instead of 4 GiB. It still verifies size and digest of the
whole logical content, so a wrong answer here can cost a boot, never corrupt one.

Same rules as downloading `/file` (ImageData.open): unknown or deleted image 404, deactivated
403, and 204 when the image has no readable data (queued, or every location unreadable).
"""

from __future__ import annotations

from chute.images.service import ImageService
from chute.stores import Extents


def image_extents(service: ImageService, image_id: str) -> Extents | None:
    """The extents of the first readable location of the image; None when it has no data."""
    found = service.first_readable(image_id, lambda store, url: store.extents(url),
                                   "no extents for it")
    return found[1] if found is not None else None


def as_document(extents: Extents) -> dict[str, object]:
    """The JSON body: `{"size": N, "extents": [{"offset": o, "length": l}, ...]}`."""
    return {"size": extents.size,
            "extents": [{"offset": offset, "length": length} for offset, length in extents.data]}
