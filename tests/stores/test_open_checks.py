"""Issue 18 item 11: the store serves only the file it checked (real files, a real server).

A store file swapped for a symlink to a host file of the same size, or for another regular
file, between the check and the open, must not be served. The swap is made deterministic by
tests/helpers/race.py; inotify (tests/helpers/opentrap.py) shows whether the host file was
ever opened, which a log line could not.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import requests

from chute import config
from chute.images.options import SCHEMA
from chute.stores.filesystem import FilesystemStore
from tests.helpers.images import upload_image
from tests.helpers.opentrap import OpenTrap
from tests.helpers.race import swap_after_check

DATA = b"image bytes, exactly as long as the secret"
SECRET = b"host secret, exactly as long as the image"[: len(DATA)].ljust(len(DATA), b"!")


@pytest.fixture
def world(tmp_path: Path):
    """A store holding one image file, and a host file of the same size outside it."""
    conf_path = tmp_path / "api.conf"
    conf_path.write_text(f"[glance_store]\nfilesystem_store_datadir = {tmp_path / 'd'}\n")
    store = FilesystemStore.from_config(config.load(conf_path, SCHEMA))
    stored = tmp_path / "d" / "img1"
    stored.write_bytes(DATA)
    host = tmp_path / "host"
    host.mkdir()
    (host / "secret").write_bytes(SECRET)
    trap = OpenTrap()
    trap.watch(host)
    yield store, stored, host / "secret", trap
    trap.close()


def read(store: FilesystemStore, path: Path) -> bytes | None:
    opened = store.open(f"file://{path}")
    if opened is None:
        return None
    with opened.fileobj as fileobj:
        return bytes(fileobj.read())


def test_the_checked_file_is_served(world):
    store, stored, _secret, trap = world
    assert read(store, stored) == DATA and trap.opened() == []


def test_a_symlink_swapped_in_after_the_check_is_never_opened(world, monkeypatch, caplog):
    """O_NOFOLLOW: the link to the host file is refused by the open itself."""
    store, stored, secret, trap = world

    def swap() -> None:
        stored.unlink()
        stored.symlink_to(secret)

    race = swap_after_check(monkeypatch, stored, swap)
    assert read(store, stored) is None
    assert race.fired == 1
    assert trap.opened() == []  # not even opened, let alone served
    assert any("cannot open" in r.getMessage() for r in caplog.records)


def test_another_file_swapped_in_after_the_check_is_not_served(world, monkeypatch, caplog):
    """The opened descriptor must be the inode that was checked (st_dev, st_ino)."""
    store, stored, secret, _trap = world
    other = stored.parent / ".swap"
    os.link(secret, other)  # the host file, under a name in the datadir

    race = swap_after_check(monkeypatch, stored, lambda: os.rename(other, stored))
    assert read(store, stored) is None
    assert race.fired == 1
    assert any("changed while being opened" in r.getMessage() for r in caplog.records)


def test_the_server_does_not_serve_a_store_file_swapped_for_a_symlink(shared_api, tmp_path):
    image = upload_image(shared_api, DATA, name="swapped")
    stored = Path(shared_api.datadir) / image["id"]
    secret = tmp_path / "secret"
    secret.write_bytes(SECRET)
    trap = OpenTrap()
    try:
        trap.watch(tmp_path)
        stored.unlink()
        stored.symlink_to(secret)
        resp = requests.get(f"{shared_api.url}/v2/images/{image['id']}/file", timeout=10)
        assert resp.status_code != 200 and SECRET not in resp.content, resp.status_code
        assert trap.opened() == []
    finally:
        trap.close()
