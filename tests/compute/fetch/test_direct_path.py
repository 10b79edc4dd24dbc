"""The direct path's URL translation and open checks, on real files (no server needed).

Every refusal is a DirectPathUnavailable with a reason code; each of Nova's flaws
(docs/architecture.md#nova-file-handler, worked examples 4-7) has a test here.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from chute import config
from chute.compute import settings
from chute.compute.fetch import shared_fs
from chute.compute.options import SCHEMA
from chute.errors import ConfigError, DirectPathUnavailable

IMAGE = "0c6e2f5e-1111-4222-8333-444455556666"


@pytest.fixture
def layout(tmp_path: Path):
    """The compute host's mount of the shared filesystem, holding one image file."""
    mount = tmp_path / "opt" / "gluster"
    images = mount / "glance" / "images"
    images.mkdir(parents=True)
    (images / IMAGE).write_bytes(b"image bytes")
    fs = shared_fs.Filesystem("gluster", "gfs1", str(mount))
    return tmp_path, mount, {"gfs1": fs}


META = {"id": "gfs1", "mountpoint": "/mnt/gluster"}


def reason(url: str, by_id, metadata=META) -> str:
    with pytest.raises(DirectPathUnavailable) as caught:
        path, fs = shared_fs.local_path(url, metadata, by_id)
        os.close(shared_fs.open_source(path, fs))
    return caught.value.reason


def test_translates_by_components_and_opens_the_local_file(layout):
    _, mount, by_id = layout
    path, fs = shared_fs.local_path(f"file:///mnt/gluster/glance/images/{IMAGE}", META, by_id)
    assert path == str(mount / "glance" / "images" / IMAGE) and fs.name == "gluster"
    fd = shared_fs.open_source(path, fs)
    try:
        assert os.read(fd, 100) == b"image bytes"
    finally:
        os.close(fd)


@pytest.mark.parametrize("glance_mount", ["/mnt/gluster/", "/mnt//gluster", "/mnt/gluster//"])
def test_trailing_and_doubled_slashes_are_irrelevant(layout, glance_mount):
    _, mount, by_id = layout
    for url in (f"file:///mnt/gluster/glance/images/{IMAGE}",
                f"file:///mnt//gluster//glance/images//{IMAGE}"):
        path, _ = shared_fs.local_path(url, {"id": "gfs1", "mountpoint": glance_mount}, by_id)
        assert path == str(mount / "glance" / "images" / IMAGE)


def test_a_prefix_that_is_not_a_whole_component_does_not_match(layout):
    # Nova example 7: mountpoint /mnt/g "matched" /mnt/gluster/... and produced /opt/xluster.
    _, _, by_id = layout
    url = f"file:///mnt/gluster/glance/images/{IMAGE}"
    assert reason(url, by_id, {"id": "gfs1", "mountpoint": "/mnt/g"}) == "outside_mountpoint"
    assert reason(f"file:///srv/img/{IMAGE}", by_id) == "outside_mountpoint"
    assert reason("file:///mnt/gluster", by_id) == "outside_mountpoint"  # the mount itself


@pytest.mark.parametrize("path", [
    "/mnt/gluster/glance/../../../etc/passwd",
    "/mnt/gluster/glance/images/%2e%2e/%2E%2E/secret",
    "/mnt/gluster/glance/images/%2e%2e%2f%2e%2e%2fsecret",
    "/mnt/gluster/./glance/images/x",
])
def test_dot_segments_are_refused_even_percent_encoded(layout, path):
    assert reason("file://" + path, layout[2]) == "dot_dot"


def test_url_is_decoded_exactly_once(layout):
    tmp, mount, by_id = layout
    odd = mount / "glance" / "images" / "%2e%2e"  # a real file literally named %2e%2e
    odd.write_bytes(b"x")
    path, _ = shared_fs.local_path("file:///mnt/gluster/glance/images/%252e%252e", META, by_id)
    assert path == str(odd)


@pytest.mark.parametrize("url,why", [
    ("file:///mnt/gluster/glance/images/a%00b", "bad_url"),
    ("file://otherhost/mnt/gluster/glance/images/x", "bad_url"),
    ("file:///mnt/gluster/glance/images/x?y=1", "bad_url"),
])
def test_malformed_urls_are_refused(layout, url, why):
    assert reason(url, layout[2]) == why


def test_metadata_and_id_must_match_configuration(layout):
    _, _, by_id = layout
    url = f"file:///mnt/gluster/glance/images/{IMAGE}"
    assert reason(url, by_id, {}) == "no_metadata"
    assert reason(url, by_id, {"id": "gfs1"}) == "no_metadata"
    assert reason(url, by_id, {"id": "other", "mountpoint": "/mnt/gluster"}) == \
        "unknown_filesystem"
    assert reason(url, {}) == "unknown_filesystem"  # no legacy "/ -> /" mode


def test_symlink_escaping_the_mountpoint_is_refused(layout):
    tmp, mount, by_id = layout
    outside = tmp / "secret"
    outside.write_bytes(b"host file")
    link = mount / "glance" / "images" / "evil"
    link.symlink_to(outside)
    assert reason("file:///mnt/gluster/glance/images/evil", by_id) == "symlink_escape"
    # a directory symlink on the way out counts too
    (mount / "glance" / "up").symlink_to(tmp)
    assert reason("file:///mnt/gluster/glance/up/secret", by_id) == "symlink_escape"


def test_symlink_inside_the_mountpoint_is_followed(layout):
    _, mount, by_id = layout
    (mount / "alias").symlink_to(mount / "glance" / "images" / IMAGE)
    path, fs = shared_fs.local_path("file:///mnt/gluster/alias", META, by_id)
    assert path == str(mount / "glance" / "images" / IMAGE)
    os.close(shared_fs.open_source(path, fs))


def test_mountpoint_itself_behind_a_symlink_works(tmp_path, layout):
    _, mount, _ = layout
    view = tmp_path / "view"
    view.symlink_to(mount)
    by_id = {"gfs1": shared_fs.Filesystem("gluster", "gfs1", str(view))}
    path, fs = shared_fs.local_path(f"file:///mnt/gluster/glance/images/{IMAGE}", META, by_id)
    os.close(shared_fs.open_source(path, fs))


def test_only_regular_files_are_opened(layout):
    _, mount, by_id = layout
    images = mount / "glance" / "images"
    os.mkfifo(images / "fifo")
    (images / "dir").mkdir()
    os.mknod(images / "null", stat.S_IFCHR | 0o600, os.makedev(1, 3))
    for name, kind in (("fifo", "a FIFO"), ("dir", "a directory"), ("null", "a device")):
        with pytest.raises(DirectPathUnavailable, match=kind) as caught:
            path, fs = shared_fs.local_path(f"file:///mnt/gluster/glance/images/{name}", META,
                                         by_id)
            shared_fs.open_source(path, fs)
        assert caught.value.reason == "not_regular_file"
    assert reason("file:///mnt/gluster/glance/images/missing", by_id) == "missing_file"


def conf_from_text(tmp_path: Path, text: str) -> config.Config:
    path = tmp_path / "compute.conf"
    path.write_text(text)
    return config.load(path, SCHEMA)


def test_filesystems_from_config_and_their_errors(tmp_path):
    conf = conf_from_text(tmp_path, "[image_file_url]\nfilesystems = a\n"
                                "[image_file_url:a]\nid = fs-a\nmountpoint = /opt/a\n")
    assert settings.filesystems(conf) == {"fs-a": shared_fs.Filesystem("a", "fs-a", "/opt/a")}
    for text, problem in (
        ("[image_file_url]\nfilesystems = b\n", r"\[image_file_url\] filesystems: names "
                                                r"\[image_file_url:b\], which is missing"),
        ("[image_file_url]\nfilesystems = a\n[image_file_url:a]\nmountpoint = /x\n",
         r"\[image_file_url:a\] id: must be set"),
        ("[image_file_url]\nfilesystems = a\n[image_file_url:a]\nid = i\nmountpoint = rel\n",
         r"\[image_file_url:a\] mountpoint: must be an absolute path"),
    ):
        with pytest.raises(ConfigError, match=problem):
            settings.filesystems(conf_from_text(tmp_path, text))
