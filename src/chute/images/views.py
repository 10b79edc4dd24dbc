"""Image documents as Glance renders them (ResponseSerializer._format_image)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from chute.images.db import ImageRecord
from chute.images.schema import BLOCKS_KEY

BASE_FIELDS = ("name", "disk_format", "container_format", "visibility", "size", "virtual_size",
               "status", "checksum", "protected", "min_ram", "min_disk", "owner", "os_hidden",
               "os_hash_algo", "os_hash_value", "id")


def timestamp(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def image_document(rec: ImageRecord, show_direct_url: bool,
                   show_locations: bool) -> dict[str, Any]:
    doc: dict[str, Any] = {name: value if value is not None else "" for name, value
                           in rec.properties.items()}
    for name in BASE_FIELDS:
        doc[name] = rec.columns[name]
    doc["protected"] = bool(doc["protected"])
    doc["os_hidden"] = bool(doc["os_hidden"])
    doc["created_at"] = timestamp(rec.created_at)
    doc["updated_at"] = timestamp(rec.updated_at)
    if show_locations:
        doc["locations"] = [{"url": loc.url, "metadata": loc.metadata} for loc in rec.locations]
    # Glance shows the stores an image is in (each location's `store`) with enabled_backends;
    # locations of the single store carry no `store`, so the key is absent there, as in Glance.
    stores = [loc.metadata.get("store") for loc in rec.locations]
    if any(isinstance(store, str) and store for store in stores):
        doc["stores"] = ",".join(str(store) for store in stores if store)
    if show_direct_url and rec.locations:
        doc["direct_url"] = rec.locations[0].url
    if rec.chute_blake3_blocks:
        doc[BLOCKS_KEY] = rec.chute_blake3_blocks
    doc["tags"] = list(rec.tags)
    doc["self"] = f"/v2/images/{rec.id}"
    doc["file"] = f"/v2/images/{rec.id}/file"
    doc["schema"] = "/v2/schemas/image"
    return doc
