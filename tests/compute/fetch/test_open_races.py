"""Issue 18 item 11: the direct path opens only the file it checked, or falls back to HTTP.

Each test swaps part of the path right after the check and before the open
(tests/helpers/race.py), on a mirror of the store used as the compute's mountpoint, so the
image service keeps serving good bytes. The swapped-in files hold the image's exact bytes:
the hash check cannot catch them, only the open checks can. Every case runs twice: with
openat2 resolving beneath the mountpoint (where the kernel has it) and with today's
O_NOFOLLOW-and-compare checks alone. inotify (tests/helpers/opentrap.py) shows whether a file
outside the mountpoint was opened at all.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from chute.client.image import Image
from chute.compute.fetch import shared_fs
from chute.compute.main import image_cache
from tests.helpers.fetch import lines, warnings
from tests.helpers.opentrap import OpenTrap
from tests.helpers.race import swap_after_check

MiB = 1 << 20


@pytest.fixture(params=["openat2", "o_nofollow"])
def opener(request, monkeypatch) -> str:
    if request.param == "o_nofollow":
        monkeypatch.setattr(shared_fs, "openat2_usable", False)
    elif shared_fs.openat2_usable is False:
        pytest.skip("this kernel has no openat2")
    return str(request.param)


@pytest.fixture
def trap():
    watch = OpenTrap()
    yield watch
    watch.close()


def setup(fetch_env, tmp_path: Path):
    data = os.urandom(MiB)
    image = fetch_env.upload(data)
    mirror = fetch_env.mirror(image)
    victim = mirror / "images" / image["id"]
    outside = tmp_path / "outside"
    outside.mkdir()
    return data, image, mirror, victim, outside


def fetch_over_http(fetch_env, caplog, mirror: Path, image: dict, data: bytes, why: str) -> None:
    """One WARNING saying why the direct path was not used, then HTTP with the right bytes."""
    got = image_cache(fetch_env.conf(mountpoint=mirror)).fetch(Image.parse(image))
    assert Path(got.path).read_bytes() == data and got.method == "http"
    warned = warnings(caplog)
    assert len(warned) == 1 and warned[0].startswith("Direct path not used for file://"), warned
    assert why in warned[0], warned
    assert lines(caplog, "Successfully transferred using http")
    assert not lines(caplog, "Successfully transferred using file")


def test_final_component_swapped_for_a_symlink_is_never_followed(
        fetch_env, fetch_log, tmp_path, trap, monkeypatch, opener):
    data, image, mirror, victim, outside = setup(fetch_env, tmp_path)
    (outside / "same-bytes").write_bytes(data)
    trap.watch(outside)

    def swap() -> None:
        victim.unlink()
        victim.symlink_to(outside / "same-bytes")

    race = swap_after_check(monkeypatch, victim, swap)
    fetch_over_http(fetch_env, fetch_log, mirror, image, data, "cannot be opened")
    assert race.fired == 1
    assert trap.opened() == []  # O_NOFOLLOW / RESOLVE_NO_SYMLINKS: refused by the open


def test_final_component_swapped_for_another_file_is_refused(
        fetch_env, fetch_log, tmp_path, monkeypatch, opener):
    """Inside the mountpoint and with the right bytes: only the inode comparison sees it."""
    data, image, mirror, victim, _outside = setup(fetch_env, tmp_path)
    other = mirror / "images" / "other"
    other.write_bytes(data)
    race = swap_after_check(monkeypatch, victim, lambda: os.rename(other, victim))
    fetch_over_http(fetch_env, fetch_log, mirror, image, data, "changed while being opened")
    assert race.fired == 1


def test_directory_swapped_for_a_symlink_out_of_the_mountpoint(
        fetch_env, fetch_log, tmp_path, trap, monkeypatch, opener):
    """`images/` becomes a link to a directory outside holding a hard link of the very file
    that was checked (same inode, right bytes): the opened path is what differs. With
    openat2 nothing outside is opened; without it, the descriptor's path gives it away."""
    data, image, mirror, victim, outside = setup(fetch_env, tmp_path)
    os.link(victim, outside / image["id"])
    trap.watch(outside)
    images = mirror / "images"

    def swap() -> None:
        images.rename(mirror / "images.old")
        images.symlink_to(outside, target_is_directory=True)

    race = swap_after_check(monkeypatch, victim, swap)
    why = "cannot be opened" if opener == "openat2" else "changed while being opened"
    fetch_over_http(fetch_env, fetch_log, mirror, image, data, why)
    assert race.fired == 1
    opened = trap.opened()
    if opener == "openat2":
        assert opened == []  # resolved beneath the mountpoint in the open itself
    else:
        assert opened == [str(outside / image["id"])]  # opened, then refused


def test_without_a_race_the_direct_path_is_used(fetch_env, fetch_log, tmp_path, opener):
    data, image, mirror, _victim, _outside = setup(fetch_env, tmp_path)
    got = image_cache(fetch_env.conf(mountpoint=mirror)).fetch(Image.parse(image))
    assert Path(got.path).read_bytes() == data and got.method == "file"
    assert not warnings(fetch_log)
    if opener == "openat2":
        assert shared_fs.openat2_usable is True
