"""Store backends behind one interface, chosen by URL scheme; filesystem first."""

from __future__ import annotations

from typing import TYPE_CHECKING

from chute.config import Fail
from chute.stores.base import Extents, Opened, Store, StoredLocation, Writer
from chute.stores.options import StoreSettings

if TYPE_CHECKING:
    from chute.stores.backends import Backends

__all__ = ["Extents", "Opened", "Store", "StoreSettings", "StoredLocation", "Writer",
           "for_url", "from_settings"]


def from_settings(settings: StoreSettings, fail: Fail) -> Backends:
    """The enabled stores (one, or Glance's `enabled_backends`), checked and prepared."""
    from chute.stores.backends import Backends

    return Backends.from_settings(settings, fail)


def for_url(stores: list[Store], url: str) -> Store | None:
    """The store that can read `url`, by its scheme."""
    scheme = url.split(":", 1)[0].lower()
    for store in stores:
        if scheme in store.schemes:
            return store
    return None
