"""Store backends behind one interface, chosen by URL scheme; filesystem first."""

from __future__ import annotations

from typing import TYPE_CHECKING

from chute.config import Config
from chute.stores.base import Extents, Opened, Store, StoredLocation, Writer

if TYPE_CHECKING:
    from chute.stores.filesystem import FilesystemStore

__all__ = ["Extents", "Opened", "Store", "StoredLocation", "Writer", "from_config", "for_url"]


def from_config(conf: Config) -> "FilesystemStore":
    """The store new images go to (the only one for now: the filesystem store)."""
    from chute.stores.filesystem import FilesystemStore

    return FilesystemStore.from_config(conf)


def for_url(stores: list[Store], url: str) -> Store | None:
    """The store that can read `url`, by its scheme."""
    scheme = url.split(":", 1)[0].lower()
    for store in stores:
        if scheme in store.schemes:
            return store
    return None
