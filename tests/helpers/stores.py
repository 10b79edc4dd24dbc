"""A chute-api with several filesystem stores (Glance's `enabled_backends`), one shared
filesystem each: `<root>/<store>/images`, its metadata file naming `<store>-fs` mounted at
`<root>/<store>`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.helpers.services import ApiServer, prepare_api


def fs_id(store: str) -> str:
    return f"{store}-fs"


def store_sections(root: Path, stores: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    """`[DEFAULT] enabled_backends`, `[glance_store] default_backend` (the first store) and
    one section per store, each with its own filesystem's metadata file."""
    sections: dict[str, dict[str, Any]] = {
        "DEFAULT": {"enabled_backends": [f"{store}:file" for store in stores]},
        "glance_store": {"default_backend": stores[0], "filesystem_store_datadir": "",
                         "filesystem_store_metadata_file": ""},
    }
    for store in stores:
        mount = root / store
        mount.mkdir(exist_ok=True)
        metadata = root / f"{store}-metadata.json"
        metadata.write_text(json.dumps({"id": fs_id(store), "mountpoint": str(mount)}))
        sections[store] = {"filesystem_store_datadir": str(mount / "images"),
                           "filesystem_store_metadata_file": str(metadata),
                           "store_description": f"rack {store}"}
    return sections


def prepare_stores_api(root: Path, stores: tuple[str, ...] = ("rack1", "rack2"),
                       **overrides: dict[str, Any]) -> ApiServer:
    """A chute-api (not started) whose default store is `stores[0]`; its `datadir` is that
    store's."""
    sections = store_sections(root, stores)
    for section, options in overrides.items():
        sections.setdefault(section, {}).update(options)
    api = prepare_api(root, **sections)
    api.datadir = root / stores[0] / "images"
    return api


def datadir(api: ApiServer, store: str) -> Path:
    return api.root / store / "images"
