"""chute.client.download (its sink) writes with O_DIRECT where the filesystem takes it, and
the bytes come out exact whatever the chunk sizes and whatever filesystem the target is on."""

from __future__ import annotations

import errno
import fcntl
import io
import os
from pathlib import Path

from chute.client.download import CHUNK, download_image
from chute.client.image import Image
from chute.client.images import ImageClient
from chute.client.sink import FileSink
from chute.transfer.odirect import ALIGN

SHM = Path("/dev/shm")


def _write_all(path: Path, pieces: list[bytes]) -> bool:
    """Write `pieces` through the FileSink download_image does; True if O_DIRECT was used."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with FileSink(fd, str(path)) as out:
            direct = out.odirect
            for piece in pieces:
                out.write(piece)
            out.flush()
        os.fsync(fd)
    finally:
        os.close(fd)
    return direct


def test_odd_sized_pieces_come_out_exact_through_o_direct(tmp_path):
    sizes = [1, ALIGN - 1, CHUNK, CHUNK + 3, 7, 3 * ALIGN, CHUNK - 5, 11]
    pieces = [os.urandom(n) for n in sizes]
    target = tmp_path / "direct.raw"
    assert _write_all(target, pieces) is True  # tmp_path is on ext4 here: O_DIRECT works
    assert target.read_bytes() == b"".join(pieces)


def test_pieces_come_out_exact_on_tmpfs_too():
    # tmpfs refused O_DIRECT before Linux 6.6 and takes it since: exact either way.
    assert SHM.is_dir(), "this test needs the /dev/shm tmpfs"
    pieces = [os.urandom(n) for n in (CHUNK + 1, 5, ALIGN)]
    target = SHM / f"chute-test-{os.getpid()}.raw"
    try:
        _write_all(target, pieces)
        assert target.read_bytes() == b"".join(pieces)
    finally:
        target.unlink(missing_ok=True)


def test_download_image_with_an_unaligned_size_is_exact(shared_api, tmp_path):
    data = os.urandom(3 * CHUNK + ALIGN // 2 + 1)
    client = ImageClient(shared_api.url)
    image = client.create(name="direct", disk_format="raw", container_format="bare")
    client.upload(image["id"], io.BytesIO(data), len(data))
    done = download_image(client, Image.parse(client.get(image["id"])), str(tmp_path / "d.raw"))
    assert done.nbytes == len(data)
    assert (tmp_path / "d.raw").read_bytes() == data
    assert [p.name for p in tmp_path.iterdir()] == ["d.raw"]


def test_a_filesystem_refusing_o_direct_midway_still_gets_every_byte(tmp_path, monkeypatch):
    # No filesystem here refuses O_DIRECT writes once opened (some FUSE and network ones do,
    # with EINVAL), so the kernel's refusal is played at the system call: every write on a
    # descriptor opened with O_DIRECT fails, and the writer goes on through the page cache.
    real_pwrite, calls, refused = os.pwrite, [], []

    def pwrite(fd: int, data: bytes, offset: int) -> int:
        calls.append(fd)
        if fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_DIRECT:
            refused.append(len(calls))
            raise OSError(errno.EINVAL, "Invalid argument")
        return real_pwrite(fd, data, offset)

    monkeypatch.setattr(os, "pwrite", pwrite)
    pieces = [os.urandom(n) for n in (CHUNK + 1, 3 * ALIGN, CHUNK - 7, 5)]
    target = tmp_path / "refused.raw"
    assert _write_all(target, pieces) is True
    assert refused and refused == list(range(1, len(refused) + 1))  # only the first tries
    assert len(calls) > len(refused)  # then the ordinary descriptor took every byte
    assert target.read_bytes() == b"".join(pieces)
