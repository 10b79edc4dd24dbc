"""Several stores over HTTP: `GET /v2/info/stores[/detail]` and
`DELETE /v2/stores/{store_id}/{image_id}` (chute.images.stores_service has the rules)."""

from __future__ import annotations

from typing import Any

import falcon

from chute.auth.middleware import context_of
from chute.httpapi import json_response, no_body
from chute.images.stores_service import StoreService, StoresView
from chute.stores.backends import TYPE, StoreInfo


def _store(info: StoreInfo, detail: bool) -> dict[str, Any]:
    """One store as Glance's InfoController renders it: `default` is the string "true"."""
    doc: dict[str, Any] = {"id": info.id}
    if info.description:
        doc["description"] = info.description
    if info.default:
        doc["default"] = "true"
    if detail:
        doc["type"] = TYPE
        doc["properties"] = {"data_dir": info.datadir, "chunk_size": info.chunk_size,
                             "thin_provisioning": False}
        doc["weight"] = info.weight
    return doc


def stores_document(view: StoresView) -> dict[str, Any]:
    return {"stores": [_store(info, view.detail) for info in view.stores]}


class StoresInfoResource:
    def __init__(self, stores: StoreService, detail: bool) -> None:
        self.stores = stores
        self.detail = detail

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        no_body(req)
        json_response(resp, stores_document(self.stores.info(context_of(req), self.detail)))


class StoreImageResource:
    """`DELETE /v2/stores/{store_id}/{image_id}`: 204, the store's copy gone."""

    def __init__(self, stores: StoreService) -> None:
        self.stores = stores

    def on_delete(self, req: falcon.Request, resp: falcon.Response, store_id: str,
                  image_id: str) -> None:
        no_body(req)
        self.stores.delete_from_store(store_id, image_id, context_of(req))
        resp.status = falcon.HTTP_204
