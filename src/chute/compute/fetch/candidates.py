"""Where an image's bytes may be read from, in the order to try them.

Glance's `locations` first (they carry the filesystem metadata the direct path needs), falling
back to the service-only `GET /v2/images/{id}/locations` when the document hides them
(`show_multiple_locations = false`), then `direct_url` with empty metadata. Nova tried a URL
present in both twice, the second time without metadata (nova-image-fetch.md 2.1): we keep the
first occurrence only.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from chute.errors import RemoteError

LOG = logging.getLogger("chute.compute.fetch")


@dataclass(frozen=True)
class Location:
    url: str
    metadata: dict[str, Any] = field(default_factory=dict)


def candidates(image: dict[str, Any], client: Any) -> list[Location]:
    """De-duplicated candidate locations; the locations endpoint is asked only if needed."""
    raw = image.get("locations")
    if not raw:
        try:
            raw = client.locations(image["id"])
        except RemoteError as exc:
            LOG.info("Locations of image %s not available: %s", image["id"], exc.message)
            raw = []
    found: dict[str, Location] = {}
    for entry in raw or []:
        url = entry.get("url") if isinstance(entry, dict) else None
        if isinstance(url, str) and url and url not in found:
            metadata = entry.get("metadata")
            found[url] = Location(url, metadata if isinstance(metadata, dict) else {})
    direct = image.get("direct_url")
    if isinstance(direct, str) and direct and direct not in found:
        found[direct] = Location(direct)
    return list(found.values())
