"""Several filesystem stores behind one `Backends` on real directories: each write lands in the
store asked for with that store's location metadata, each URL is read by the store holding it,
and recovery covers every store."""

from __future__ import annotations

import json
import os

from chute import config
from chute.images.options import SCHEMA, ApiSettings
from chute.stores import from_settings
from chute.stores.backends import Backends
from chute.stores.filesystem import HOST


def two_stores(tmp_path) -> Backends:
    lines = ["[DEFAULT]", "enabled_backends = rack1:file, rack2:file",
             "[glance_store]", "filesystem_store_datadir =", "default_backend = rack1"]
    for store in ("rack1", "rack2"):
        (tmp_path / f"{store}.json").write_text(
            json.dumps({"id": f"{store}-fs", "mountpoint": str(tmp_path / store)}))
        lines += [f"[{store}]", f"filesystem_store_datadir = {tmp_path / store / 'images'}",
                  f"filesystem_store_metadata_file = {tmp_path / store}.json"]
    path = tmp_path / "api.conf"
    path.write_text("\n".join(lines) + "\n")
    conf = config.load(path, SCHEMA)
    return from_settings(ApiSettings.from_config(conf).store, conf.fail)


def stored(backends: Backends, image_id: str, data: bytes, store_id: str | None = None):
    writer = backends.writer(image_id, len(data), store_id=store_id)
    writer.write(data)
    location = writer.commit()
    writer.settle()
    return location


def test_each_store_records_its_own_filesystem_and_id(tmp_path):
    backends = two_stores(tmp_path)
    assert (backends.ids, backends.default_id, backends.multi) == (("rack1", "rack2"), "rack1",
                                                                   True)
    default = stored(backends, "img1", b"one")
    chosen = stored(backends, "img2", b"two", "rack2")
    assert default.url == f"file://{tmp_path}/rack1/images/img1"
    assert default.metadata == {"id": "rack1-fs", "mountpoint": str(tmp_path / "rack1"),
                                "store": "rack1"}
    assert chosen.metadata == {"id": "rack2-fs", "mountpoint": str(tmp_path / "rack2"),
                               "store": "rack2"}
    assert backends.store_of(chosen.url) == "rack2"
    opened = backends.open(chosen.url)
    assert opened is not None and opened.fileobj.read() == b"two"
    opened.fileobj.close()
    backends.delete(chosen.url)
    assert not (tmp_path / "rack2" / "images" / "img2").exists()


def test_recovery_removes_what_crashed_writes_left_in_every_store(tmp_path):
    backends = two_stores(tmp_path)
    for store in ("rack1", "rack2"):
        backends.writer(f"crashed-{store}", 1, store_id=store).write(b"x")  # never committed
    removed = backends.recover()
    assert sorted(removed.values()) == ["crashed-rack1", "crashed-rack2"]
    for store in ("rack1", "rack2"):
        assert not [n for n in os.listdir(tmp_path / store / "images") if n.endswith(
            f".{HOST}.partial")]


def test_a_single_store_writes_locations_without_a_store_id(tmp_path):
    path = tmp_path / "api.conf"
    path.write_text(f"[glance_store]\nfilesystem_store_datadir = {tmp_path / 'images'}\n")
    conf = config.load(path, SCHEMA)
    backends = from_settings(ApiSettings.from_config(conf).store, conf.fail)
    assert (backends.multi, backends.ids) == (False, ())
    assert "store" not in stored(backends, "img", b"data").metadata
