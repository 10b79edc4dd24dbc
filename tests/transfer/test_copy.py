"""chute.transfer.copy on real files and real filesystems (ext4 here, tmpfs, XFS with reflink)."""

from __future__ import annotations

import hashlib
import os
import subprocess
import threading
from pathlib import Path

import blake3
import pytest

from chute.transfer import copy
from tests.helpers.blocksref import blake3_blocks

MiB = 1 << 20


def make_sparse(path: Path, pieces: list[tuple[int, int]], size: int) -> bytes:
    """A file of `size` bytes with random data at (offset, length) pieces, holes elsewhere."""
    with open(path, "wb") as handle:
        for offset, length in pieces:
            handle.seek(offset)
            handle.write(os.urandom(length))
        handle.truncate(size)
    return path.read_bytes()


@pytest.fixture(autouse=True)
def fresh_refusals():
    copy.forget_refusals()
    yield
    copy.forget_refusals()


SPARSE_PIECES = [(0, 3 * MiB + 17), (10 * MiB, 2 * MiB), (40 * MiB, 5)]


@pytest.fixture
def sparse_src(tmp_path: Path) -> tuple[Path, bytes]:
    path = tmp_path / "src.img"
    content = make_sparse(path, SPARSE_PIECES, 48 * MiB)
    return path, content


@pytest.fixture
def tmpfs_dir(tmp_path: Path):
    """A directory on tmpfs, a different filesystem type from tmp_path's."""
    shm = Path("/dev/shm")
    if not shm.is_dir() or os.statvfs(shm).f_bsize == 0:
        pytest.skip("/dev/shm is not available")
    with open("/proc/mounts") as mounts:
        if not any(line.split()[1] == "/dev/shm" and line.split()[2] == "tmpfs"
                   for line in mounts):
            pytest.skip("/dev/shm is not a tmpfs here")
    path = shm / f"chute-copy-{os.getpid()}-{tmp_path.name}"
    path.mkdir()
    yield path
    subprocess.run(["rm", "-rf", str(path)], check=True)


def test_copy_file_range_keeps_holes_and_hashes_the_whole_content(sparse_src, tmp_path):
    src, content = sparse_src
    dst = tmp_path / "dst.img"
    result = copy.copy_file(str(src), str(dst), algorithm="sha512")
    assert result.primitive == copy.COPY_FILE_RANGE
    assert result.nbytes == len(content) == dst.stat().st_size
    assert dst.read_bytes() == content
    assert result.digest == hashlib.sha512(content).hexdigest()
    # ext4's copy_file_range would write the holes as zeros if asked to copy them.
    assert dst.stat().st_blocks <= src.stat().st_blocks
    assert dst.stat().st_blocks * 512 < 8 * MiB


def test_blake3_and_md5_digests_equal_the_libraries(sparse_src, tmp_path):
    src, content = sparse_src
    for algorithm, expected in (("blake3", blake3.blake3(content).hexdigest()),
                                ("md5", hashlib.md5(content).hexdigest())):
        result = copy.copy_file(str(src), str(tmp_path / algorithm), algorithm=algorithm)
        assert result.digest == expected


def test_blake3_blocks_is_exact_on_every_primitive(sparse_src, tmp_path, tmpfs_dir,
                                                   xfs_reflink):
    """Holes (skipped as whole zero blocks, or partly inside a block) and data all count."""
    src, content = sparse_src
    want = blake3_blocks(content)
    on_xfs = xfs_reflink / "src.img"
    with open(on_xfs, "wb") as handle:  # the same bytes and holes as `src`
        for offset, length in SPARSE_PIECES:
            handle.seek(offset)
            handle.write(content[offset:offset + length])
        handle.truncate(len(content))
    for source, target, primitive in ((src, tmp_path / "cfr", copy.COPY_FILE_RANGE),
                                      (src, tmpfs_dir / "rw", copy.READ_WRITE),
                                      (on_xfs, xfs_reflink / "clone", copy.CLONE)):
        result = copy.copy_file(str(source), str(target), algorithm="blake3-blocks")
        assert (result.primitive, result.digest) == (primitive, want)
        assert target.read_bytes() == content


def test_all_hole_and_empty_files(tmp_path):
    holes = tmp_path / "holes"
    holes.write_bytes(b"")
    os.truncate(holes, 9 * MiB)
    result = copy.copy_file(str(holes), str(tmp_path / "h2"), algorithm="sha256")
    assert result.digest == hashlib.sha256(bytes(9 * MiB)).hexdigest()
    assert (tmp_path / "h2").stat().st_blocks == 0
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    result = copy.copy_file(str(empty), str(tmp_path / "e2"), algorithm="sha256")
    assert (result.nbytes, result.digest) == (0, hashlib.sha256(b"").hexdigest())


def test_refusal_is_remembered_per_filesystem_pair(sparse_src, tmpfs_dir, monkeypatch):
    src, content = sparse_src
    calls = {"ioctl": 0, "copy_file_range": 0}
    real_ioctl, real_cfr = copy.fcntl.ioctl, os.copy_file_range

    def counting_ioctl(*args):
        calls["ioctl"] += 1
        return real_ioctl(*args)

    def counting_cfr(*args):
        calls["copy_file_range"] += 1
        return real_cfr(*args)

    monkeypatch.setattr(copy.fcntl, "ioctl", counting_ioctl)
    monkeypatch.setattr(os, "copy_file_range", counting_cfr)

    first = copy.copy_file(str(src), str(tmpfs_dir / "one"), algorithm="sha256")
    # ext4 -> tmpfs: FICLONE is EXDEV (two mounts), copy_file_range EXDEV (Linux >= 5.12).
    assert first.primitive == copy.READ_WRITE
    pair = (src.stat().st_dev, tmpfs_dir.stat().st_dev)
    assert copy.refused(*pair) == {"clone": "EXDEV", "copy_file_range": "EXDEV"}
    assert calls == {"ioctl": 1, "copy_file_range": 1}

    second = copy.copy_file(str(src), str(tmpfs_dir / "two"), algorithm="sha256")
    assert second.primitive == copy.READ_WRITE
    assert calls == {"ioctl": 1, "copy_file_range": 1}, "a refused syscall was tried again"
    assert (tmpfs_dir / "two").read_bytes() == content
    assert second.digest == first.digest == hashlib.sha256(content).hexdigest()
    # read_write also skips holes: tmpfs keeps them.
    assert (tmpfs_dir / "two").stat().st_blocks * 512 < 8 * MiB

    back = copy.copy_file(str(tmpfs_dir / "two"), str(src.parent / "back"))
    assert back.primitive == copy.READ_WRITE and (src.parent / "back").read_bytes() == content
    assert copy.refused(*pair) == {"clone": "EXDEV", "copy_file_range": "EXDEV"}


def test_source_truncated_during_copy_is_an_error(tmp_path, monkeypatch):
    monkeypatch.setattr(copy, "CHUNK", 1 * MiB)
    src = tmp_path / "src"
    src.write_bytes(os.urandom(6 * MiB))

    def truncate_source(done: int) -> None:
        if done >= 2 * MiB:
            os.truncate(src, 3 * MiB)

    with pytest.raises(copy.ShortSource, match="ended at"):
        copy.copy_file(str(src), str(tmp_path / "dst"), algorithm="sha256",
                       on_chunk=truncate_source)


def test_progress_callback_reaches_the_size(sparse_src, tmp_path):
    src, content = sparse_src
    seen: list[int] = []
    copy.copy_file(str(src), str(tmp_path / "dst"), on_chunk=seen.append)
    assert seen == sorted(seen) and seen[-1] == len(content)


@pytest.mark.parametrize("algorithm", ["blake3", "blake3-blocks"])
def test_no_threads_or_descriptors_leak_across_many_copies(tmp_path, algorithm):
    src = tmp_path / "small.img"
    make_sparse(src, [(0, 300_000), (MiB, 5000)], 2 * MiB)
    copy.copy_file(str(src), str(tmp_path / "warm"), algorithm=algorithm)
    threads, fds = threading.active_count(), len(os.listdir("/proc/self/fd"))
    for number in range(20):
        copy.copy_file(str(src), str(tmp_path / f"c{number % 3}"), algorithm=algorithm)
    with pytest.raises(FileNotFoundError):
        copy.copy_file(str(tmp_path / "missing"), str(tmp_path / "x"), algorithm=algorithm)
    assert threading.active_count() == threads
    assert len(os.listdir("/proc/self/fd")) == fds


def test_no_threads_or_descriptors_leak_across_many_verified_clones(xfs_reflink):
    src = xfs_reflink / "small.img"
    make_sparse(src, [(0, 300_000), (5 * MiB, 5000)], 9 * MiB)
    copy.copy_file(str(src), str(xfs_reflink / "warm"), algorithm="blake3-blocks")
    threads, fds = threading.active_count(), len(os.listdir("/proc/self/fd"))
    for number in range(10):
        result = copy.copy_file(str(src), str(xfs_reflink / f"c{number % 3}"),
                                algorithm="blake3-blocks")
        assert result.primitive == copy.CLONE
    assert threading.active_count() == threads
    assert len(os.listdir("/proc/self/fd")) == fds


def test_xfs_reflink_clones_and_still_verifies(xfs_reflink, tmp_path):
    src = xfs_reflink / "src.img"
    content = make_sparse(src, [(0, 2 * MiB), (20 * MiB, MiB)], 30 * MiB)
    dst = xfs_reflink / "dst.img"
    result = copy.copy_file(str(src), str(dst), algorithm="sha256")
    assert result.primitive == copy.CLONE
    assert result.digest == hashlib.sha256(content).hexdigest()
    assert dst.read_bytes() == content
    fiemap = subprocess.run(["xfs_io", "-c", "fiemap -v", str(dst)], capture_output=True,
                            text=True, check=True).stdout
    extents = [line.split() for line in fiemap.splitlines()[2:] if "hole" not in line]
    assert len(extents) == 2, fiemap  # the holes stayed holes
    assert all(int(fields[-1], 16) & 0x2000 for fields in extents), fiemap  # EXTENT_SHARED
    assert copy.probe(str(src), str(xfs_reflink))[0].ok

    # XFS -> ext4: two superblocks, clone and copy_file_range refused, still exact.
    out = copy.copy_file(str(src), str(tmp_path / "out.img"), algorithm="sha256")
    assert out.primitive == copy.READ_WRITE and out.digest == result.digest
    pair = (src.stat().st_dev, tmp_path.stat().st_dev)
    assert set(copy.refused(*pair)) == {"clone", "copy_file_range"}


@pytest.mark.parametrize("algorithm", ["blake3", "blake3-blocks"])
def test_a_source_written_while_its_clone_is_verified_is_refused(xfs_reflink, monkeypatch,
                                                                 algorithm):
    src = xfs_reflink / "changing.img"
    src.write_bytes(os.urandom(3 * MiB))
    real_segments = copy.segments

    def segments_then_write(fd, size):
        yield from real_segments(fd, size)
        with open(src, "r+b") as handle:  # another writer, after the ioctl
            handle.write(b"changed")

    monkeypatch.setattr(copy, "segments", segments_then_write)
    with pytest.raises(OSError, match="source changed while its clone was verified"):
        copy.copy_file(str(src), str(xfs_reflink / "clone.img"), algorithm=algorithm)


@pytest.mark.parametrize("primitive", ["copy_file_range", "read_write"])
def test_the_digest_is_of_what_the_destination_holds(sparse_src, tmp_path, monkeypatch,
                                                     primitive):
    # A copy primitive whose destination ends up different from what it read (a lying
    # filesystem, a bug in the copy): the digest must show it. Hashing the source's bytes,
    # as the verifier once did, would report the image's digest for a wrong copy.
    src, content = sparse_src
    if primitive == "read_write":
        monkeypatch.setattr(os, "copy_file_range", refuse_copy_file_range)
    real_copy_range = copy._copy_range

    def copy_then_flip(src_fd, dst, offset, length, *args):
        real_copy_range(src_fd, dst, offset, length, *args)
        if offset == 0:
            os.pwrite(dst, bytes([content[1] ^ 0xFF]), 1)

    monkeypatch.setattr(copy, "_copy_range", copy_then_flip)
    with open(src, "rb") as s, open(tmp_path / "dst", "w+b") as d:
        result = copy.copy_fd(s.fileno(), d.fileno(), algorithm="sha512")
    assert result.primitive == primitive
    assert result.digest != hashlib.sha512(content).hexdigest()
    wrong = bytearray(content)
    wrong[1] ^= 0xFF
    assert result.digest == hashlib.sha512(wrong).hexdigest()


def refuse_copy_file_range(*args: object) -> int:
    raise OSError(95, "Operation not supported")  # EOPNOTSUPP: remembered, read/write used


def cached_bytes(path: Path) -> int:
    """Bytes of `path` in the page cache, as util-linux's fincore counts them."""
    done = subprocess.run(["fincore", "--bytes", "--noheadings", "--output", "RES", str(path)],
                          capture_output=True, text=True, check=True)
    return int(done.stdout.split()[0])


def test_the_extents_after_the_one_being_copied_are_read_ahead(tmp_path):
    """A cold sparse source: starting the first extent asks the kernel for the next ones
    (the kernel's own readahead stops at the hole before each of them)."""
    src = tmp_path / "src.img"
    make_sparse(src, [(0, MiB), (16 * MiB, 2 * MiB), (40 * MiB, 2 * MiB)], 48 * MiB)
    fd = os.open(src, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)  # clean pages: dropped
        assert cached_bytes(src) < MiB
        size = os.fstat(fd).st_size
        copy._Readahead(fd, list(copy.segments(fd, size))).starting(0)
        for _ in range(200):  # WILLNEED queues the reads; they land a little later
            if cached_bytes(src) >= 4 * MiB:
                break
            threading.Event().wait(0.01)
        assert cached_bytes(src) >= 4 * MiB  # both later extents, not the first one
    finally:
        os.close(fd)


def test_a_small_readahead_budget_still_copies_every_extent_exactly(tmp_path, monkeypatch):
    src = tmp_path / "src.img"
    pieces = [(index * 3 * MiB + 4096, MiB + 100) for index in range(12)]
    content = make_sparse(src, pieces, 40 * MiB)
    monkeypatch.setattr(copy, "PREFETCH", MiB + MiB // 2)  # ranges asked for one at a time
    result = copy.copy_file(str(src), str(tmp_path / "dst.img"), algorithm="blake3-blocks")
    assert (tmp_path / "dst.img").read_bytes() == content
    assert result.digest == blake3_blocks(content)


def test_a_clone_runs_while_verifying_beside_its_verification(xfs_reflink, monkeypatch):
    """The caller's work and the hashing of the source wait for each other here: both can
    only finish if they run at the same time. The digest is still the whole content's."""
    src = xfs_reflink / "beside.img"
    content = make_sparse(src, [(0, 9 * MiB), (20 * MiB, MiB)], 24 * MiB)
    hashing, beside = threading.Event(), threading.Event()
    real_digest = copy.blocks_digest_fd

    def digest_meeting_the_caller(*args, **kwargs):
        hashing.set()
        assert beside.wait(10), "while_verifying did not run during the verification"
        return real_digest(*args, **kwargs)

    def while_verifying() -> None:
        beside.set()
        assert hashing.wait(10), "the verification did not run during while_verifying"

    monkeypatch.setattr(copy, "blocks_digest_fd", digest_meeting_the_caller)
    result = copy.copy_file(str(src), str(xfs_reflink / "beside.clone"),
                            algorithm="blake3-blocks", while_verifying=while_verifying)
    assert result.primitive == copy.CLONE and result.digest == blake3_blocks(content)


def test_a_failure_beside_a_clones_verification_comes_with_the_verdict(xfs_reflink):
    """The caller learns the bytes' digest with the error of its work, so it can say first
    that the bytes were wrong; the verification has ended: no thread is left reading."""
    src = xfs_reflink / "failing.img"
    content = os.urandom(17 * MiB)
    src.write_bytes(content)
    threads = threading.active_count()

    def while_verifying() -> None:
        raise RuntimeError("no room for the instance's disk")

    for algorithm, digest in (("blake3-blocks", blake3_blocks(content)),
                              ("sha256", hashlib.sha256(content).hexdigest())):
        with pytest.raises(copy.FailedBeside) as failed:
            copy.copy_file(str(src), str(xfs_reflink / "failing.clone"), algorithm=algorithm,
                           while_verifying=while_verifying)
        assert str(failed.value.error) == "no room for the instance's disk"
        assert (failed.value.nbytes, failed.value.digest) == (len(content), digest)
        assert threading.active_count() == threads


def test_only_a_clone_calls_while_verifying(sparse_src, tmp_path):
    """Other copies verify as they copy: the caller does its work after them."""
    calls: list[str] = []
    result = copy.copy_file(str(sparse_src[0]), str(tmp_path / "copied"),
                            algorithm="blake3-blocks",
                            while_verifying=lambda: calls.append("called"))
    assert result.primitive != copy.CLONE and calls == []
