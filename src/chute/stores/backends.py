"""The enabled stores, by id: Glance's `enabled_backends` (or the one store of `[glance_store]`).

chute-api holds one `Backends` and hands it to everything that used to hold the single store:
it is itself a `Store` (new bytes go to the default store unless a caller names another; a URL
is read, measured and deleted by the store whose datadir holds it), so the upload, import and
recovery paths are the same with one store or several.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from chute.config import Fail
from chute.errors import Invalid
from chute.stores.base import Extents, Opened, StoredLocation
from chute.stores.filesystem import FilesystemStore, FileWriter
from chute.stores.options import StoreSettings

TYPE = "file"  # the only store type chute has (`enabled_backends = rack1:file`)


@dataclass(frozen=True)
class StoreInfo:
    """What `GET /v2/info/stores[/detail]` shows of one store."""

    id: str
    description: str
    default: bool
    weight: int
    datadir: str
    chunk_size: int


class Backends:
    schemes: tuple[str, ...] = FilesystemStore.schemes

    def __init__(self, stores: dict[str, FilesystemStore], default_id: str, multi: bool,
                 infos: Sequence[StoreInfo] = ()) -> None:
        self.stores = stores
        self.default_id = default_id
        self.multi = multi  # False: the single store of [glance_store], locations carry no id
        self.infos = tuple(infos)

    @classmethod
    def from_settings(cls, settings: StoreSettings, fail: Fail) -> Backends:
        """Validate and prepare every store at start; any problem is `fail(...)` raised."""
        if not settings.backends:
            return cls({"": FilesystemStore.from_settings(settings, fail)}, "", False)
        stores = {b.id: FilesystemStore.from_backend(b, fail) for b in settings.backends}
        infos = [StoreInfo(b.id, b.description, b.id == settings.default_backend, b.weight,
                           stores[b.id].datadirs[0].path, settings.chunk_size)
                 for b in settings.backends]
        return cls(stores, settings.default_backend, True, infos)

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(self.stores) if self.multi else ()

    def get(self, store_id: str) -> FilesystemStore:
        """The store named `store_id`; Invalid (Glance's UnknownScheme words) if none."""
        store = self.stores.get(store_id) if self.multi else None
        if store is None:
            raise Invalid(f"Unknown scheme '{store_id}' found in URI")
        return store

    @property
    def default(self) -> FilesystemStore:
        return self.stores[self.default_id]

    @property
    def root(self) -> str:
        """The default store's data root (default home of the database)."""
        return self.default.root

    def owner(self, url: str) -> FilesystemStore:
        """The store whose datadir holds `url`; the default one (which refuses to read it,
        saying so) when none does."""
        for store in self.stores.values():
            if store.owns(url):
                return store
        return self.default

    def store_of(self, url: str) -> str | None:
        """The id of the store holding `url`, None with the single store or outside all."""
        if not self.multi:
            return None
        for store_id, store in self.stores.items():
            if store.owns(url):
                return store_id
        return None

    # -- the Store interface ------------------------------------------------------------------

    def writer(self, image_id: str, size_hint: int, store_id: str | None = None) -> FileWriter:
        store = self.default if store_id is None else self.get(store_id)
        return store.writer(image_id, size_hint)

    def stager(self, image_id: str, size_hint: int) -> FileWriter:
        """Staged in the default store's datadir: `glance-direct` into that store is then a
        rename (chute.images.imports copies into any other store asked for)."""
        return self.default.stager(image_id, size_hint)

    def promote(self, image_id: str) -> StoredLocation:
        for store in self.stores.values():
            if store.staged_path(image_id) is not None:
                return store.promote(image_id)
        return self.default.promote(image_id)  # raises FileNotFoundError: nothing staged

    def unstage(self, image_id: str) -> None:
        for store in self.stores.values():
            store.unstage(image_id)

    def open(self, url: str) -> Opened | None:
        return self.owner(url).open(url)

    def extents(self, url: str) -> Extents | None:
        return self.owner(url).extents(url)

    def delete(self, url: str) -> None:
        self.owner(url).delete(url)

    def recover(self, interrupted: Sequence[str] = ()) -> dict[str, str]:
        removed: dict[str, str] = {}
        for store in self.stores.values():
            removed.update(store.recover(interrupted))
        return removed

    def partial_ids(self) -> set[str]:
        return set().union(*(store.partial_ids() for store in self.stores.values()))

    def abandon(self, image_id: str, final: bool) -> list[str]:
        return [path for store in self.stores.values() for path in store.abandon(image_id, final)]
