"""`GET /v2/images/{id}/extents` (chute extension): the stored file's data segments, and the
same access rules as downloading `/file`. Also the store's `extents` and `coalesce` below it.

Uploads leave all-zero chunks as holes, but how finely depends on the writer; the tests that
need an exact layout rewrite the stored file with the same bytes and known holes.
"""

from __future__ import annotations

import os

import pytest
import requests

from chute.stores.base import MAX_EXTENTS, MIN_HOLE, coalesce
from chute.stores.filesystem import Datadir, FilesystemStore
from tests.helpers.images import JSON, create, rewrite_sparse, upload

pytestmark = pytest.mark.backend_independent  # the stored file's segments

KiB, MiB = 1 << 10, 1 << 20
SIZE = 24 * MiB
# (offset, length) of the data; the 32 KiB hole inside the second pair is below MIN_HOLE.
DATA_AT = [(4 * MiB, MiB), (10 * MiB, 64 * KiB), (10 * MiB + 96 * KiB, 64 * KiB),
           (SIZE - 64 * KiB, 64 * KiB)]
WANT = [(4 * MiB, MiB), (10 * MiB, 160 * KiB), (SIZE - 64 * KiB, 64 * KiB)]


def sparse_bytes() -> bytes:
    data = bytearray(SIZE)
    for offset, length in DATA_AT:
        data[offset:offset + length] = os.urandom(length)
    return bytes(data)


def extents_url(api, image_id: str) -> str:
    return f"{api.url}/v2/images/{image_id}/extents"


def sparse_image(api) -> tuple[dict, bytes]:
    data = sparse_bytes()
    made = create(api)
    assert upload(api, made["id"], data).status_code == 204
    rewrite_sparse(api.datadir / made["id"], data)
    return made, data


def test_extents_are_the_data_segments_with_tiny_holes_merged(shared_api):
    made, _ = sparse_image(shared_api)
    resp = requests.get(extents_url(shared_api, made["id"]), timeout=10)
    assert resp.status_code == 200 and resp.headers["Content-Type"] == "application/json"
    body = resp.json()
    assert body == {"size": SIZE,
                    "extents": [{"offset": o, "length": n} for o, n in WANT]}


def test_a_dense_image_is_one_extent_and_an_empty_one_none(shared_api):
    dense, empty = create(shared_api), create(shared_api)
    upload(shared_api, dense["id"], os.urandom(MiB + 5))
    upload(shared_api, empty["id"], b"")
    got = requests.get(extents_url(shared_api, dense["id"]), timeout=10).json()
    assert got == {"size": MiB + 5, "extents": [{"offset": 0, "length": MiB + 5}]}
    got = requests.get(extents_url(shared_api, empty["id"]), timeout=10).json()
    assert got == {"size": 0, "extents": []}


def test_same_access_rules_as_the_file(shared_api):
    queued = create(shared_api)
    no_data = requests.get(extents_url(shared_api, queued["id"]), timeout=10)
    assert no_data.status_code == 204 and no_data.content == b""  # as GET /file
    assert requests.get(extents_url(shared_api, "nope"), headers=JSON,
                        timeout=10).status_code == 404
    made, _ = sparse_image(shared_api)
    url = extents_url(shared_api, made["id"])
    image = f"{shared_api.url}/v2/images/{made['id']}"
    assert requests.post(f"{image}/actions/deactivate", timeout=10).status_code == 204
    denied = requests.get(url, headers=JSON, timeout=10)
    assert denied.status_code == 403 and "deactivated" in denied.json()["message"]
    assert requests.post(f"{image}/actions/reactivate", timeout=10).status_code == 204
    assert requests.get(url, timeout=10).status_code == 200
    assert requests.get(url, data=b"x", timeout=10).status_code == 400  # no body, as /file
    assert requests.delete(image, timeout=10).status_code == 204
    assert requests.get(url, headers=JSON, timeout=10).status_code == 404


def test_a_file_that_is_not_the_image_is_not_described(shared_api):
    made = create(shared_api)
    upload(shared_api, made["id"], b"0123456789")
    os.truncate(shared_api.datadir / made["id"], 5)  # GET /file refuses it too (204)
    assert requests.get(extents_url(shared_api, made["id"]), timeout=10).status_code == 204
    gone = create(shared_api)
    upload(shared_api, gone["id"], b"soon gone")
    os.unlink(shared_api.datadir / gone["id"])
    assert requests.get(extents_url(shared_api, gone["id"]), timeout=10).status_code == 204


def test_store_extents_read_only_files_in_its_datadirs(tmp_path):
    datadir = tmp_path / "images"
    datadir.mkdir()
    store = FilesystemStore([Datadir(str(datadir), 0)], 0, [], "")
    data = sparse_bytes()
    rewrite_sparse(datadir / "img", data)
    found = store.extents(f"file://{datadir}/img")
    assert found is not None and found.size == SIZE and list(found.data) == WANT
    outside = tmp_path / "elsewhere"
    rewrite_sparse(outside, data)
    assert store.extents(f"file://{outside}") is None
    os.mkfifo(datadir / "fifo")  # never opened: it would block the worker
    assert store.extents(f"file://{datadir}/fifo") is None
    assert store.extents(f"file://{datadir}/missing") is None


def test_coalesce_merges_holes_below_min_hole_only():
    segments = [(0, 10), (10 + MIN_HOLE - 1, 5), (10 + MIN_HOLE - 1 + 5 + MIN_HOLE, 7)]
    got = coalesce(iter(segments), 1 << 30)
    assert got.data == ((0, 10 + MIN_HOLE - 1 + 5), (segments[2][0], 7))


def test_coalesce_answers_one_extent_past_the_cap():
    step = 2 * MIN_HOLE
    size = step * (MAX_EXTENTS + 1)
    at_cap = coalesce(((i * step, 1) for i in range(MAX_EXTENTS)), size)
    assert len(at_cap.data) == MAX_EXTENTS
    consumed = []

    def fragments():
        for i in range(MAX_EXTENTS + 100):
            consumed.append(i)
            yield i * step, 1

    over = coalesce(fragments(), size)
    assert over.data == ((0, size),)
    assert len(consumed) == MAX_EXTENTS + 1  # stopped reading once past the cap
