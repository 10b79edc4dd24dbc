"""Several stores (Glance's `enabled_backends`): which stores exist, which store a request
names, and removing one store's copy of an image (`DELETE /v2/stores/{store}/{image}`).

Copying an image to more stores is an import (`copy-image`, chute.images.imports); this module
holds the rules Glance applies to store names so that the upload and the import apply them
alike.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from chute.auth.context import RequestContext
from chute.errors import Conflict, Forbidden, Invalid, NotFound
from chute.images.service import ImageService
from chute.images.status import ACTIVE
from chute.stores.backends import Backends, StoreInfo

LOG = logging.getLogger(__name__)

NOT_MULTI = "Multi backend is not supported at this site."


@dataclass(frozen=True)
class StoresView:
    """What `GET /v2/info/stores` shows; `detail`: the admin's `/detail` (type, properties)."""

    stores: tuple[StoreInfo, ...]
    detail: bool


def unknown_store(store_id: str) -> str:
    """glance_store's UnknownScheme words, which Glance answers for a store it does not have."""
    return f"Unknown scheme '{store_id}' found in URI"


def upload_store(backends: Backends, header: str | None) -> str | None:
    """The store an upload goes to: `X-Image-Meta-Store`, else the default; None (the header
    ignored, as Glance does) with the single store. 400 for an unknown store, as Glance."""
    if not backends.multi:
        return None
    store_id = header.strip() if header is not None else backends.default_id
    if store_id not in backends.ids:
        raise Invalid(unknown_store(store_id))
    return store_id


class StoreService:
    def __init__(self, service: ImageService, backends: Backends) -> None:
        self.service = service
        self.backends = backends

    def info(self, ctx: RequestContext, detail: bool) -> StoresView:
        if not self.backends.multi:
            raise NotFound(NOT_MULTI)
        if detail:
            self.service.policy.authorize("stores_info_detail",
                                          {"project_id": ctx.project_id or ""}, ctx)
        return StoresView(self.backends.infos, detail)

    def delete_from_store(self, store_id: str, image_id: str, ctx: RequestContext) -> None:
        """Remove `store_id`'s copy of an active image that has another: Glance's checks in
        Glance's order, the database first (never an active image without data), then the
        file."""
        if not self.backends.multi:
            raise NotFound("The resource could not be found.")
        if store_id not in self.backends.ids:
            raise Conflict(f"The selected store {store_id} is not available on this node.")
        try:
            record = self.service.authorized(image_id, ctx, "delete_image_location")
        except NotFound:
            raise NotFound(f"Failed to find image {image_id}") from None
        if record.status != ACTIVE:
            raise Conflict("It's not allowed to remove image data from store if image status "
                           "is not 'active'")
        if len(record.locations) == 1:
            raise Forbidden("Cannot delete image data from the only store containing it. "
                            "Consider deleting the image instead.")
        url = next((loc.url for loc in record.locations
                    if loc.metadata.get("store") == store_id), None)
        if url is None:
            raise NotFound(f"Image {image_id} is not stored in store {store_id}.")
        if not self.service.db.remove_location(image_id, url):
            raise Conflict(f"Image {image_id} changed while its data was being removed from "
                           f"store {store_id}; retry.")
        self.backends.delete(url)
        LOG.info("image %s: removed its copy in store %s (%s)", image_id, store_id, url)
