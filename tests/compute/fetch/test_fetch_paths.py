"""Fetching real uploads from a real chute-api: the direct path, and every fallback reason.

Each fallback test shows the one WARNING naming the reason and then
`Successfully transferred using http`; a corrupted store file ends in IntegrityError because
HTTP serves the same bad bytes.
"""

from __future__ import annotations

import hashlib
import os
import stat
import subprocess
from pathlib import Path

import pytest

from chute.client.image import Image
from chute.compute.image_service import FailoverImageService
from chute.compute.main import fetcher as build_fetcher
from chute.compute.main import image_cache, image_service
from chute.errors import IntegrityError
from tests.helpers.blocksref import blake3_blocks
from tests.helpers.fetch import FetchEnv, lines, warnings

MiB = 1 << 20


def sparse_bytes() -> bytes:
    data = bytearray(6 * MiB)
    data[:MiB + 5] = os.urandom(MiB + 5)
    data[4 * MiB:4 * MiB + 300] = os.urandom(300)
    return bytes(data)


def fetch(env, conf, image) -> tuple[object, bytes]:
    cache = image_cache(conf)
    got = cache.fetch(Image.parse(image))
    return got, Path(got.path).read_bytes()


def test_direct_copy_through_the_other_mountpoint(fetch_env, fetch_log):
    data = sparse_bytes()
    image = fetch_env.upload(data)
    assert image["os_glance_blake3_blocks"] == blake3_blocks(data)
    got, content = fetch(fetch_env, fetch_env.conf(), image)
    assert content == data and got.method == "file" and got.nbytes == len(data)
    assert got.primitive in ("copy_file_range", "read_write", "clone")
    local = fetch_env.view / "images" / image["id"]
    assert lines(fetch_log, f"Copied {local} using file ({got.primitive}, {len(data)} bytes in ")
    assert lines(fetch_log, "Successfully transferred using file")
    assert not lines(fetch_log, "using http") and not warnings(fetch_log)
    assert hashlib.sha512(content).hexdigest() == image["os_hash_value"]
    assert not list(Path(got.path).parent.glob("*.part"))


def test_verify_digest_os_hash_value_uses_sha512(fetch_env, fetch_log):
    data = os.urandom(MiB)
    image = fetch_env.upload(data)
    conf = fetch_env.conf(glance={"verify_digest": "os_hash_value"})
    got, content = fetch(fetch_env, conf, image)
    assert got.method == "file" and content == data


def test_scheme_not_allowed_goes_to_http_without_warning(fetch_env, fetch_log):
    image = fetch_env.upload(os.urandom(MiB))
    got, _ = fetch(fetch_env, fetch_env.conf(schemes=""), image)
    assert got.method == "http" and got.primitive is None
    assert lines(fetch_log, "Successfully transferred using http")
    assert not warnings(fetch_log)


def assert_fell_back(env, caplog, conf, image, data, reason_text):
    got, content = fetch(env, conf, image)
    assert content == data and got.method == "http"
    warned = warnings(caplog)
    assert any(w.startswith("Direct path not used for file://") and reason_text in w
               for w in warned), warned
    assert lines(caplog, "Successfully transferred using http")
    assert not lines(caplog, "Successfully transferred using file")


def test_unknown_filesystem_id(fetch_env, fetch_log):
    data = os.urandom(MiB)
    image = fetch_env.upload(data)
    assert_fell_back(fetch_env, fetch_log, fetch_env.conf(fs_id="some-other-fs"), image, data,
                     "filesystem id 'shared-fs-1' is not configured here (some-other-fs)")


def test_mountpoint_where_the_file_is_missing(fetch_env, fetch_log, tmp_path):
    data = os.urandom(MiB)
    image = fetch_env.upload(data)
    empty = tmp_path / "not-mounted"
    empty.mkdir()
    assert_fell_back(fetch_env, fetch_log, fetch_env.conf(mountpoint=empty), image, data,
                     "does not exist")


def test_no_metadata(start_api, tmp_path, fetch_log):
    api = start_api(glance_store={"filesystem_store_metadata_file": ""})
    env = FetchEnv(api, tmp_path, Path(api.root) / "store", False)
    data = os.urandom(MiB)
    image = env.upload(data)
    assert_fell_back(env, fetch_log, env.conf(), image, data,
                     "the location has no filesystem metadata")


def test_symlink_escaping_the_mountpoint(fetch_env, fetch_log, tmp_path):
    data = os.urandom(MiB)
    image = fetch_env.upload(data)
    mirror = fetch_env.mirror(image)
    outside = tmp_path / "outside.img"
    outside.write_bytes(data)  # even the right bytes are refused outside the mountpoint
    victim = mirror / "images" / image["id"]
    victim.unlink()
    victim.symlink_to(outside)
    assert_fell_back(fetch_env, fetch_log, fetch_env.conf(mountpoint=mirror), image, data,
                     "outside the mountpoint")


@pytest.mark.parametrize("kind", ["missing", "fifo", "directory", "device"])
def test_missing_or_not_a_regular_file(fetch_env, fetch_log, kind):
    data = os.urandom(MiB)
    image = fetch_env.upload(data)
    mirror = fetch_env.mirror(image)
    victim = mirror / "images" / image["id"]
    victim.unlink()
    expect = {"missing": "does not exist", "fifo": "is a FIFO",
              "directory": "is a directory", "device": "is a device"}[kind]
    if kind == "fifo":
        os.mkfifo(victim)
    elif kind == "directory":
        victim.mkdir()
    elif kind == "device":
        os.mknod(victim, stat.S_IFCHR | 0o600, os.makedev(1, 5))  # /dev/zero: endless zeros
    assert_fell_back(fetch_env, fetch_log, fetch_env.conf(mountpoint=mirror), image, data,
                     expect)


def test_truncated_file(fetch_env, fetch_log):
    data = os.urandom(2 * MiB)
    image = fetch_env.upload(data)
    mirror = fetch_env.mirror(image)
    os.truncate(mirror / "images" / image["id"], MiB)
    assert_fell_back(fetch_env, fetch_log, fetch_env.conf(mountpoint=mirror), image, data,
                     f"has {MiB} bytes, the image has {2 * MiB}")


def test_corrupted_byte_in_the_compute_view(fetch_env, fetch_log):
    data = os.urandom(2 * MiB)
    image = fetch_env.upload(data)
    mirror = fetch_env.mirror(image)
    flip(mirror / "images" / image["id"], 1234567)
    assert_fell_back(fetch_env, fetch_log, fetch_env.conf(mountpoint=mirror), image, data,
                     "does not match os_glance_blake3_blocks")


def test_a_byte_written_into_a_hole_in_the_compute_view(fetch_env, fetch_log):
    """A whole hole block is never hashed (its digest is a constant), so the verifier must
    notice when that region holds data after all: SEEK_DATA reports it, it is hashed."""
    data = bytearray(13 * MiB)
    data[:MiB + 5] = os.urandom(MiB + 5)
    data[9 * MiB:9 * MiB + 300] = os.urandom(300)
    image = fetch_env.upload(bytes(data))
    mirror = fetch_env.mirror(image)
    changed = mirror / "images" / image["id"]
    # Inside a full hole block; then in the hole part of a block that also holds data.
    for number, offset in enumerate((6 * MiB + 3, 2 * MiB)):
        flip(changed, offset)
        conf = fetch_env.conf(f"c{number}.conf", mountpoint=mirror,
                              DEFAULT={"instances_path": fetch_env.tmp / f"i{number}"})
        assert_fell_back(fetch_env, fetch_log, conf, image, bytes(data),
                         "does not match os_glance_blake3_blocks")
        flip(changed, offset)
        fetch_log.clear()


def flip(path: Path, offset: int) -> None:
    with open(path, "r+b") as handle:
        handle.seek(offset)
        byte = handle.read(1)
        handle.seek(offset)
        handle.write(bytes([byte[0] ^ 0xFF]))


def test_corrupted_store_file_is_fatal(fetch_env, fetch_log):
    data = os.urandom(2 * MiB)
    image = fetch_env.upload(data)
    flip(fetch_env.stored(image), 99)
    conf = fetch_env.conf()
    cache = image_cache(conf)
    with pytest.raises(IntegrityError, match="image data does not match its checksum"):
        cache.fetch(Image.parse(image))
    assert any("does not match os_glance_blake3_blocks" in w for w in warnings(fetch_log))
    assert not lines(fetch_log, "Successfully transferred")
    base_dir = Path(cache.dir)
    assert not [p.name for p in base_dir.iterdir() if not p.name.endswith(".lock")]


def test_locations_endpoint_when_the_document_hides_them(start_api, tmp_path, fetch_log):
    api = start_api(DEFAULT={"show_multiple_locations": "false",
                             "show_image_direct_url": "false", "service_token": "s3cret"})
    env = FetchEnv(api, tmp_path, Path(api.root) / "store", False)
    data = os.urandom(MiB)
    image = env.upload(data)
    assert "locations" not in image and "direct_url" not in image
    conf = env.conf("a.conf")
    without = image_cache(conf)
    assert without.fetch(Image.parse(image)).method == "http"  # 403 on the locations endpoint: HTTP
    conf = env.conf("b.conf", glance={"service_token": "s3cret"},
                    DEFAULT={"instances_path": tmp_path / "i2"})
    with_token = image_cache(conf)
    got = with_token.fetch(Image.parse(image))
    assert got.method == "file" and Path(got.path).read_bytes() == data


def test_candidates_are_deduplicated_locations_first(fetch_env):
    from chute.compute.fetch import candidates
    image = fetch_env.upload(os.urandom(4096))
    found = candidates(Image.parse(image), FailoverImageService([fetch_env.api.url]))
    assert len(found) == 1 and found[0].url == image["direct_url"]
    assert found[0].metadata == {"id": "shared-fs-1", "mountpoint": str(fetch_env.store)}


def test_fetcher_refuses_an_image_without_any_digest(fetch_env):
    from chute.errors import TransferError
    conf = fetch_env.conf()
    fetcher = build_fetcher(conf, image_service(conf))
    with pytest.raises(TransferError, match="no usable checksum"):
        fetcher.fetch(Image.parse({"id": "x", "size": 1, "status": "active"}),
                      str(fetch_env.tmp / "p"))


@pytest.fixture
def tiny_tmpfs(tmp_path):
    """A 1 MiB tmpfs: a disk that fills up (root only)."""
    target = tmp_path / "tiny"
    target.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(target)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    yield target
    subprocess.run(["umount", str(target)], check=True)


@pytest.mark.parametrize("schemes", ["file", ""])
def test_a_full_disk_stops_the_fetch_and_leaves_nothing(fetch_env, fetch_log, tiny_tmpfs,
                                                        schemes):
    from chute.errors import TransferError
    image = fetch_env.upload(os.urandom(3 * MiB))
    conf = fetch_env.conf(schemes=schemes, DEFAULT={"instances_path": tiny_tmpfs})
    cache = image_cache(conf)
    with pytest.raises(TransferError, match="No space left on device"):
        cache.fetch(Image.parse(image))
    assert not lines(fetch_log, "Successfully transferred")
    assert not [p.name for p in Path(cache.dir).iterdir() if not p.name.endswith(".lock")]


def test_clone_on_a_reflink_filesystem(start_api, xfs_reflink, tmp_path, fetch_log):
    """Store and cache on one XFS (reflink=1): the image arrives as a clone, still verified."""
    import json as _json

    store = xfs_reflink / f"store-{tmp_path.name}"
    (store / "images").mkdir(parents=True)
    meta = tmp_path / "metadata.json"
    meta.write_text(_json.dumps({"id": "shared-fs-1", "mountpoint": str(store)}))
    api = start_api(glance_store={"filesystem_store_datadir": str(store / "images"),
                                  "filesystem_store_metadata_file": str(meta)})
    env = FetchEnv(api, tmp_path, store, False)
    data = sparse_bytes()
    image = env.upload(data)
    conf = env.conf(DEFAULT={"instances_path": xfs_reflink / f"instances-{tmp_path.name}"})
    got, content = fetch(env, conf, image)
    assert (got.method, got.primitive) == ("file", "clone") and content == data
    assert lines(fetch_log, f"Copied {store / 'images' / image['id']} using file (clone, "
                            f"{len(data)} bytes in ")
    assert lines(fetch_log, "Successfully transferred using file")
