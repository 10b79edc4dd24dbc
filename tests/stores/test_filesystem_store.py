"""The filesystem store on real directories: datadirs choice, permissions, temp files."""

from __future__ import annotations

import ctypes
import errno
import fcntl
import mmap
import os
import stat

import pytest

from chute import config
from chute.errors import ConfigError, StorageFull
from chute.images.options import SCHEMA
from chute.stores.filesystem import HOST, FilesystemStore
from tests.helpers.images import create, show, upload


def load(tmp_path, **store):
    path = tmp_path / "api.conf"
    lines = ["[glance_store]"] + [f"{k} = {v}" for k, v in store.items()]
    path.write_text("\n".join(lines) + "\n")
    return config.load(path, SCHEMA)


def test_highest_priority_with_room_wins(tmp_path):
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    conf = load(tmp_path, filesystem_store_datadir="",
                filesystem_store_datadirs=f"{a}:1, {b}:5, {c}")
    store = FilesystemStore.from_config(conf)
    assert all(p.is_dir() for p in (a, b, c))
    assert store.choose_datadir(1) == str(b)
    # Nothing of priority 5 has room for an absurd size; lower priorities neither.
    with pytest.raises(StorageFull):
        store.choose_datadir(1 << 62)


def test_writer_commit_and_abort(tmp_path):
    conf = load(tmp_path, filesystem_store_datadir=tmp_path / "d", filesystem_store_file_perm=640)
    store = FilesystemStore.from_config(conf)
    writer = store.writer("img1", 3)
    writer.write(b"abc")
    assert os.listdir(tmp_path / "d") == [f".img1.{HOST}.partial"]
    location = writer.commit()
    assert location.url == f"file://{tmp_path / 'd' / 'img1'}"
    writer.settle()
    assert stat.S_IMODE(os.stat(tmp_path / "d" / "img1").st_mode) == 0o640
    # Group-readable files need a traversable directory (as glance_store does).
    assert os.stat(tmp_path / "d").st_mode & 0o010
    aborted = store.writer("img2", 3)
    aborted.write(b"x")
    aborted.abort()
    assert os.listdir(tmp_path / "d") == ["img1"]
    # Never overwrite an existing image file.
    again = store.writer("img1", 3)
    again.write(b"zzz")
    with pytest.raises(FileExistsError):
        again.commit()
    again.abort()
    assert (tmp_path / "d" / "img1").read_bytes() == b"abc"


def test_open_refuses_urls_outside_datadirs(tmp_path):
    conf = load(tmp_path, filesystem_store_datadir=tmp_path / "d")
    store = FilesystemStore.from_config(conf)
    (tmp_path / "secret").write_text("x")
    assert store.open(f"file://{tmp_path / 'secret'}") is None
    assert store.open(f"file://{tmp_path / 'd' / '..' / 'secret'}") is None


def test_recover_removes_only_temporary_files(tmp_path):
    conf = load(tmp_path, filesystem_store_datadir=tmp_path / "d")
    store = FilesystemStore.from_config(conf)
    (tmp_path / "d" / f".abc.{HOST}.partial").write_bytes(b"half")
    (tmp_path / "d" / ".def.otherhost.partial").write_bytes(b"another node's upload")
    (tmp_path / "d" / "abc").write_bytes(b"whole")
    assert store.recover() == {str(tmp_path / "d" / f".abc.{HOST}.partial"): "abc"}
    assert sorted(os.listdir(tmp_path / "d")) == [".def.otherhost.partial", "abc"]
    assert store.recover(["abc"]) == {str(tmp_path / "d" / "abc"): "abc"}


def test_a_commit_keeps_this_hosts_mark_until_the_database_has_it(tmp_path):
    # The window of a crash after the file got its final name and before the database said
    # `active`: the temporary name is still there, a second link to the same bytes, so a
    # restarting node on a shared database can tell that upload was its own.
    conf = load(tmp_path, filesystem_store_datadir=tmp_path / "d")
    store = FilesystemStore.from_config(conf)
    writer = store.writer("img1", 5)
    writer.write(b"whole")
    writer.commit()
    partial, final = tmp_path / "d" / f".img1.{HOST}.partial", tmp_path / "d" / "img1"
    assert os.path.samefile(partial, final) and final.read_bytes() == b"whole"
    assert store.recover() == {str(partial): "img1"}  # what a restart here would find
    assert store.recover(["img1"]) == {str(final): "img1"}  # ... and then requeue and remove
    assert os.listdir(tmp_path / "d") == []

    settled = store.writer("img2", 5)
    settled.write(b"whole")
    settled.commit()
    settled.settle()
    assert os.listdir(tmp_path / "d") == ["img2"]
    assert store.recover() == {}  # a committed upload leaves nothing for recovery


@pytest.mark.parametrize("store,option,text", [
    ({"filesystem_store_datadir": "/x", "filesystem_store_datadirs": "/y:1"},
     "filesystem_store_datadirs", "together"),
    ({"filesystem_store_datadir": "", "filesystem_store_datadirs": "/y:high"},
     "filesystem_store_datadirs", "not an integer"),
    ({"filesystem_store_datadir": ""}, "filesystem_store_datadir", "empty"),
    ({"filesystem_store_metadata_file": "/nonexistent.json"},
     "filesystem_store_metadata_file", "cannot read"),
])
def test_bad_store_config_names_the_option(tmp_path, store, option, text):
    store = {"filesystem_store_datadir": tmp_path / "d", **store}
    with pytest.raises(ConfigError) as info:
        FilesystemStore.from_config(load(tmp_path, **store))
    assert info.value.option == option and text in info.value.problem


@pytest.mark.parametrize("content,text", [
    ("not json", "not valid JSON"),
    ('{"id": "a"}', "'mountpoint'"),
    ('[{"id": "a", "mountpoint": "rel/path"}]', "absolute"),
    ('{"id": "a", "mountpoint": "/m", "n": 5}', "only strings"),
    ("[]", "non-empty"),
])
def test_bad_metadata_file_is_a_config_error(tmp_path, content, text):
    meta = tmp_path / "meta.json"
    meta.write_text(content)
    with pytest.raises(ConfigError) as info:
        FilesystemStore.from_config(load(tmp_path, filesystem_store_datadir=tmp_path / "d",
                                         filesystem_store_metadata_file=meta))
    assert info.value.option == "filesystem_store_metadata_file"
    assert text in info.value.problem


def test_server_uses_datadirs(start_api, tmp_path):
    api = start_api(glance_store={"filesystem_store_datadir": "",
                                  "filesystem_store_datadirs": f"{tmp_path / 'lo'}:0,"
                                                               f"{tmp_path / 'hi'}:9"})
    image = create(api)
    assert upload(api, image["id"], b"prio").status_code == 204
    assert show(api, image["id"])["direct_url"] == f"file://{tmp_path / 'hi' / image['id']}"


def _aligned(data: bytes) -> memoryview:
    """`data` in a page-aligned mapping, as chute.images.upload hands chunks to the store."""
    buffer = mmap.mmap(-1, len(data))
    buffer[:] = data
    return memoryview(buffer)


def _pages_cached(path) -> int:
    """Pages of `path` in the page cache (mincore of a mapping)."""
    size = os.path.getsize(path)
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                          ctypes.c_int, ctypes.c_long]
    with open(path, "rb") as handle:
        address = libc.mmap(None, size, mmap.PROT_READ, mmap.MAP_SHARED, handle.fileno(), 0)
    pages = (size + mmap.PAGESIZE - 1) // mmap.PAGESIZE
    vector = (ctypes.c_ubyte * pages)()
    assert libc.mincore(ctypes.c_void_p(address), ctypes.c_size_t(size), vector) == 0
    libc.munmap(ctypes.c_void_p(address), ctypes.c_size_t(size))
    return sum(byte & 1 for byte in vector)


def test_aligned_chunks_bypass_the_page_cache_and_holes_stay_holes(tmp_path):
    conf = load(tmp_path, filesystem_store_datadir=tmp_path / "d")
    store = FilesystemStore.from_config(conf)
    chunk = 4 << 20
    data, tail = os.urandom(2 * chunk), os.urandom(1000)
    writer = store.writer("img", 0)
    writer.write(_aligned(data[:chunk]))
    writer.write(_aligned(bytes(chunk)))  # a hole
    writer.write(_aligned(data[chunk:]))
    writer.write(_aligned(tail))
    writer.commit()
    path = tmp_path / "d" / "img"
    assert _pages_cached(path) <= 1  # only the tail's page went through the page cache
    assert path.read_bytes() == data[:chunk] + bytes(chunk) + data[chunk:] + tail
    assert os.stat(path).st_blocks * 512 < 3 * chunk  # the zeros were not written


def test_unaligned_chunks_and_holes_come_out_exact(tmp_path):
    conf = load(tmp_path, filesystem_store_datadir=tmp_path / "d")
    store = FilesystemStore.from_config(conf)
    pieces = [os.urandom(5), bytes(8192), _aligned(os.urandom(3 * 4096)), os.urandom(4099),
              bytes(4 << 20), _aligned(bytes(3 << 20)), os.urandom(7)]
    writer = store.writer("img", 0)
    for piece in pieces:
        writer.write(piece)
    writer.commit()
    assert (tmp_path / "d" / "img").read_bytes() == b"".join(bytes(p) for p in pieces)


def test_a_store_refusing_o_direct_gets_every_byte_through_the_page_cache(tmp_path,
                                                                          monkeypatch):
    real_pwrite, refused = os.pwrite, []

    def pwrite(fd: int, data, offset: int) -> int:
        if fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_DIRECT:
            refused.append(fd)
            raise OSError(errno.EINVAL, "Invalid argument")
        return real_pwrite(fd, data, offset)

    monkeypatch.setattr(os, "pwrite", pwrite)
    conf = load(tmp_path, filesystem_store_datadir=tmp_path / "d")
    store = FilesystemStore.from_config(conf)
    data = os.urandom(3 * (4 << 20) + 17)
    writer = store.writer("img", 0)
    for offset in range(0, len(data), 4 << 20):
        writer.write(_aligned(data[offset:offset + (4 << 20)]))
    writer.commit()
    assert refused  # O_DIRECT was tried, and refused
    assert (tmp_path / "d" / "img").read_bytes() == data
