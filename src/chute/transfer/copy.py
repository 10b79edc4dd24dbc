"""The one copy primitive: clone -> copy_file_range -> sparse-aware read/write, verified.

Why three primitives, cheapest first:
- `clone` (ioctl FICLONE) shares the source's extents (XFS with reflink=1, btrfs, bcachefs,
  OCFS2, NFS 4.2 with server-side clone). No data moves; the copy is metadata only.
- `copy_file_range(2)` copies inside the kernel (no user-space buffers); on NFS 4.2 / CephFS it
  becomes a server-side copy. ext4 implements it by splice, which reads holes as zeros and
  WRITES them, so we call it only on the source's data segments (SEEK_DATA/SEEK_HOLE) and let
  the destination's holes stay holes (the destination is ftruncate'd to full size first).
- `read_write`: pread/pwrite of the same data segments, for filesystem pairs the kernel refuses.

Why we remember refusals (docs/architecture.md#remember-refusals): the kernel's answer depends
on the filesystem pair, not the file. FICLONE fails with EOPNOTSUPP on ext4/tmpfs (no
remap_file_range), ENOTTY where the ioctl is not wired up, EXDEV across superblocks
(ioctl_file_clone insists on one mount), EINVAL on some filesystems for unaligned ranges.
copy_file_range fails with EXDEV between different filesystem types since Linux 5.12
(restricted again after 5.3 allowed it), and with EOPNOTSUPP/EINVAL/ENOSYS on special
filesystems, old kernels or seccomp filters. So we key the refusal on (source st_dev,
destination st_dev) and skip that syscall on the next image.

Why verification overlaps the copy: the digest of 1 GiB costs ~0.2 s with blake3-blocks on
2 cores but ~1 s with SHA-512; done after the copy it would add to every boot. A verifier
thread hashes each range of the DESTINATION (so we prove what we will use) in place through
mmap as soon as the copier has written it, while the copier moves the next range;
os.copy_file_range and the hash update both release the GIL, so both cores work. Holes go
through chute.transfer.hashing.update_zeros: blake3-blocks counts a whole zero block as a
constant instead of hashing 4 MiB of zeros, other digests are fed zeros; either way the digest
is of the full logical content, exactly as the image service computed it. A clone has no copy
to overlap with: its bytes are read once after the ioctl, through the source's (warm) pages,
by one thread per core for blake3-blocks, while the caller does what needs the bytes in
place but not their digest (copy_fd's while_verifying: a boot makes the instance's disk),
see _verify_clone.

Why writeback is started per range (start_writeback): the copy is fsynced before use, and a
page-cache copy far below the dirty thresholds would otherwise reach the disk only in that
fsync, after the copy and the hash; started per range, the disk writes while we copy.
"""

from __future__ import annotations

import errno
import fcntl
import mmap
import os
import queue
import stat
import threading
import time
from dataclasses import dataclass
from typing import Callable, Iterator

from chute.transfer.blockdigest import BLOCKS, Cancelled, blocks_digest_fd
from chute.transfer.hashing import Digest, MultiHasher, new_hash, update_zeros
from chute.transfer.writeback import start_writeback

FICLONE = 0x40049409  # _IOW(0x94, 9, int), linux/fs.h

CLONE = "clone"
COPY_FILE_RANGE = "copy_file_range"
READ_WRITE = "read_write"
PRIMITIVES = (CLONE, COPY_FILE_RANGE, READ_WRITE)

CHUNK = 32 << 20  # one copy_file_range call; the verifier trails by at most this much
_READ = 8 << 20  # verifier / read_write buffer
PREFETCH = 2 * CHUNK  # source data asked for ahead of the copy (_Readahead)

# errnos meaning "this filesystem pair does not do that", not "this file is bad".
_CLONE_REFUSED = {errno.EOPNOTSUPP, errno.ENOTTY, errno.EXDEV, errno.EINVAL, errno.ENOSYS}
_CFR_REFUSED = {errno.EXDEV, errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS, errno.EPERM}

OnChunk = Callable[[int], None]


@dataclass(frozen=True)
class CopyResult:
    """What a copy did: the primitive that moved the bytes, the logical size, time, digest."""

    primitive: str
    nbytes: int
    seconds: float
    digest: str | None = None  # hex digest of the destination's full content, if asked


class FailedBeside(Exception):
    """copy_fd's while_verifying raised (`error`) during a clone whose `nbytes` bytes hashed
    to `digest`: the caller checks the digest first, then raises `error` if the bytes were
    right."""

    def __init__(self, error: Exception, nbytes: int, digest: str) -> None:
        super().__init__(f"{error} (beside a verified clone)")
        self.error, self.nbytes, self.digest = error, nbytes, digest


class ShortSource(OSError):
    """The source ended before its size at open time: it was truncated under us."""


_refused: dict[tuple[int, int], dict[str, str]] = {}
_refused_lock = threading.Lock()


def refused(src_dev: int, dst_dev: int) -> dict[str, str]:
    """Primitives the kernel refused for this (source, destination) device pair: name -> errno."""
    with _refused_lock:
        return dict(_refused.get((src_dev, dst_dev), {}))


def forget_refusals() -> None:
    """Forget every remembered refusal (a remount may have changed the answer; tests)."""
    with _refused_lock:
        _refused.clear()


def _errname(exc: OSError) -> str:
    if exc.errno == errno.EOPNOTSUPP:  # errno.errorcode says ENOTSUP, the kernel's name differs
        return "EOPNOTSUPP"
    return errno.errorcode.get(exc.errno or 0, str(exc))


def _remember(pair: tuple[int, int], primitive: str, exc: OSError) -> None:
    with _refused_lock:
        _refused.setdefault(pair, {})[primitive] = _errname(exc)


def _allowed(pair: tuple[int, int], primitive: str) -> bool:
    with _refused_lock:
        return primitive not in _refused.get(pair, {})


def segments(fd: int, size: int) -> Iterator[tuple[bool, int, int]]:
    """(is_data, offset, length) covering [0, size), from SEEK_DATA/SEEK_HOLE.

    Filesystems without hole reporting use the VFS default (all data), which is still correct.
    """
    offset = 0
    while offset < size:
        try:
            data = os.lseek(fd, offset, os.SEEK_DATA)
        except OSError as exc:
            if exc.errno != errno.ENXIO:  # ENXIO: no data after offset, the rest is a hole
                raise
            data = size
        data = min(data, size)
        if data > offset:
            yield False, offset, data - offset
        if data >= size:
            return
        hole = min(os.lseek(fd, data, os.SEEK_HOLE), size)
        yield True, data, hole - data
        offset = hole


class _Verifier:
    """Hashes ranges of `fd` in submission order, in its own thread; holes are fed as zeros.

    Two ways to read, both measured on this machine for 1 GiB:
    - `mapped` (our own destination): mmap(MAP_POPULATE) each range and hash the page-cache
      pages in place: 0.4 s CPU where pread + hash costs 0.9 s (pread's copy into a buffer
      is half the work). Only for a file nobody else can truncate: touching a mapped page
      past a new EOF is SIGBUS.
    - otherwise (a clone's source, which the image store could truncate): pread into two
      alternating buffers while chute.transfer.hashing.MultiHasher hashes the previous one in
      another thread; MultiHasher.update returns once the buffer before is hashed.
    """

    def __init__(self, fd: int, algorithm: str, mapped: bool = False) -> None:
        self._fd, self._algorithm, self._mapped = fd, algorithm, mapped
        # Mapped ranges are hashed right here (the mapping must outlive the update); read
        # buffers are handed to MultiHasher's thread so the next pread overlaps the hashing.
        self._hasher: Digest | MultiHasher = (new_hash(algorithm) if mapped
                                              else MultiHasher([algorithm]))
        self._queue: queue.Queue[tuple[bool, int, int] | None] = queue.Queue()
        self._error: BaseException | None = None
        self._buffers = [bytearray(_READ), bytearray(_READ)]
        self._turn = 0
        self._thread = threading.Thread(target=self._run, name="verify", daemon=True)
        self._thread.start()

    def submit(self, is_data: bool, offset: int, length: int) -> None:
        if self._error is not None:
            raise self._error
        self._queue.put((is_data, offset, length))

    def finish(self) -> str:
        self._stop()
        if self._error is not None:
            raise self._error
        if isinstance(self._hasher, MultiHasher):
            return self._hasher.hexdigests()[self._algorithm]
        return self._hasher.hexdigest()

    def _stop(self) -> None:
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()

    def abort(self) -> None:
        self._stop()
        if isinstance(self._hasher, MultiHasher):
            self._hasher.close()

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            if self._error is None:
                try:
                    self._hash(*item)
                except BaseException as exc:  # surfaced to the copier by submit()/finish()
                    self._error = exc

    def _hash(self, is_data: bool, offset: int, length: int) -> None:
        if is_data and self._mapped:
            self._hash_mapped(offset, length)
            return
        if not is_data:
            update_zeros(self._hasher, length)
            return
        end = offset + length
        while offset < end:
            view = memoryview(self._buffers[self._turn])
            self._turn ^= 1
            got = os.preadv(self._fd, [view[:min(_READ, end - offset)]], offset)
            if got == 0:
                raise ShortSource(errno.EIO, f"file ended at {offset} bytes")
            self._hasher.update(view[:got])
            offset += got

    def _hash_mapped(self, offset: int, length: int) -> None:
        start = offset - offset % mmap.ALLOCATIONGRANULARITY
        mapping = mmap.mmap(self._fd, offset + length - start, prot=mmap.PROT_READ,
                            flags=mmap.MAP_SHARED | mmap.MAP_POPULATE, offset=start)
        try:
            with memoryview(mapping) as view:
                self._hasher.update(view[offset - start:])
        finally:
            mapping.close()


def _clone(src: int, dst: int, pair: tuple[int, int]) -> bool:
    if not _allowed(pair, CLONE):
        return False
    try:
        fcntl.ioctl(dst, FICLONE, src)
        return True
    except OSError as exc:
        if exc.errno not in _CLONE_REFUSED:
            raise
        _remember(pair, CLONE, exc)
        return False


def _read_write(src: int, dst: int, offset: int, length: int, buffer: bytearray) -> None:
    view = memoryview(buffer)
    end = offset + length
    while offset < end:
        got = os.preadv(src, [view[:min(len(buffer), end - offset)]], offset)
        if got == 0:
            raise ShortSource(errno.EIO, f"source ended at {offset} bytes, expected {end}")
        done = 0
        while done < got:
            done += os.pwrite(dst, view[done:got], offset + done)
        offset += got


def _copy_range(src: int, dst: int, offset: int, length: int, pair: tuple[int, int],
                used: set[str], buffer: bytearray) -> None:
    """Copy one data range with copy_file_range, finishing by read/write if it is refused."""
    end = offset + length
    while offset < end and _allowed(pair, COPY_FILE_RANGE):
        try:
            got = os.copy_file_range(src, dst, end - offset, offset, offset)
        except OSError as exc:
            if exc.errno not in _CFR_REFUSED or COPY_FILE_RANGE in used:
                raise
            _remember(pair, COPY_FILE_RANGE, exc)
            break
        if got == 0:  # EOF before the size we saw at open: read/write below decides
            break
        used.add(COPY_FILE_RANGE)
        offset += got
    if offset < end:
        used.add(READ_WRITE)
        _read_write(src, dst, offset, end - offset, buffer)


def copy_fd(src: int, dst: int, *, algorithm: str | None = None,
            on_chunk: OnChunk | None = None,
            while_verifying: Callable[[], None] | None = None) -> CopyResult:
    """Copy all of `src` into the empty, read-write `dst`; hash `dst` while copying; fsync.

    The digest (if `algorithm`) is of what the destination holds, read back after each range.
    `while_verifying`: work of the caller's that needs the destination's bytes in place but
    not yet their digest (a boot makes the instance's disk meanwhile). Called only after a
    clone, in the calling thread while other threads verify, so the work costs no wall time
    beside the verification; after any other copy the bytes are verified as they are copied
    and the caller does that work itself afterwards. An exception from it is raised once
    the verification ended: as FailedBeside, with the digest, when the verification itself
    passed. Anything it made is the caller's to undo if copy_fd or the digest check fails.
    """
    started = time.monotonic()
    src_st, dst_st = os.fstat(src), os.fstat(dst)
    if not stat.S_ISREG(src_st.st_mode):
        raise OSError(errno.EINVAL, "source is not a regular file")
    size, pair = src_st.st_size, (src_st.st_dev, dst_st.st_dev)
    if _clone(src, dst, pair):
        def alongside() -> None:
            os.fsync(dst)  # the clone's metadata: the log is forced while the bytes are hashed
            if while_verifying is not None:
                while_verifying()

        if algorithm:
            digest: str | None = _verify_clone(src, src_st, algorithm, alongside)
        else:
            digest = None
            alongside()
        if on_chunk:
            on_chunk(size)
        return CopyResult(CLONE, size, time.monotonic() - started, digest)
    verifier = _Verifier(dst, algorithm, mapped=True) if algorithm else None
    try:
        primitive = _copy_segments(src, dst, size, pair, verifier, on_chunk)
        digest = verifier.finish() if verifier else None
        os.fsync(dst)
    finally:
        if verifier:
            verifier.abort()
    return CopyResult(primitive, size, time.monotonic() - started, digest)


def _verify_clone(src: int, before: os.stat_result, algorithm: str,
                  alongside: Callable[[], None]) -> str:
    """Digest of a clone, read from the SOURCE's pages, while `alongside` runs in this thread.

    A clone is a new inode: none of its pages are cached, so reading it back would read the
    whole image from disk while the source's pages are usually warm (it was just written or
    read). The clone holds the blocks the source had at the ioctl; the source's ctime, which
    any write or truncate updates, being unchanged from before the ioctl to after the last
    read proves we hashed those same bytes.

    blake3-blocks hashes independent blocks, so every core preads and hashes its own
    (blockdigest.blocks_digest_fd; whole blocks in holes are not read); a streaming digest gets
    one reader thread feeding one hashing thread (_Verifier). Either runs in a thread of its
    own while `alongside` (fsync of the clone, the caller's while_verifying) runs here. If
    `alongside` fails, the verification still ends before anything is raised (no thread
    reads `src` after the caller closes it), and its failure, if any, wins; else the error
    comes as FailedBeside with the digest, for the caller to judge the bytes first: work
    done on bytes that then fail their check must not hide that they failed it.
    """
    stop = threading.Event()
    outcome: list[str | BaseException] = []

    def verify() -> None:
        try:
            outcome.append(_clone_digest(src, before.st_size, algorithm, stop))
        except BaseException as exc:  # re-raised by the caller's thread below
            outcome.append(exc)

    def verdict() -> str:
        verifier.join()
        if isinstance(outcome[0], BaseException):
            raise outcome[0]
        after = os.fstat(src)
        if (after.st_ctime_ns, after.st_size) != (before.st_ctime_ns, before.st_size):
            raise OSError(errno.ESTALE, "source changed while its clone was verified")
        return outcome[0]

    verifier = threading.Thread(target=verify, name="verify-clone", daemon=True)
    verifier.start()
    try:
        alongside()
    except Exception as exc:
        raise FailedBeside(exc, before.st_size, verdict()) from exc
    except BaseException:  # an interrupt: stop reading at once
        stop.set()
        verifier.join()
        raise
    return verdict()


def _clone_digest(src: int, size: int, algorithm: str, stop: threading.Event) -> str:
    if algorithm == BLOCKS:
        return blocks_digest_fd(src, segments(src, size), size, stop=stop)
    verifier = _Verifier(src, algorithm)
    try:
        for piece in segments(src, size):
            if stop.is_set():
                raise Cancelled("verification stopped before the end")
            verifier.submit(*piece)
        return verifier.finish()
    finally:
        verifier.abort()


class _Readahead:
    """Asks the kernel to read the source's next data ranges while the current one is copied.

    From a cold page cache each copy_file_range waits for its reads, and the kernel's
    readahead follows one sequential stream: it stops at every hole, so a sparse image (data
    extents between holes) was read one extent at a time, each from a standing start.
    POSIX_FADV_WILLNEED on the ranges after the current one, PREFETCH bytes of them, queues
    those reads at once (the call does not wait for them). Not the current range: within it
    the kernel's own readahead does better (measured, 512 MiB dense, cold: 0.60 s without
    any WILLNEED, 0.86 s with it ahead of every step; sparse 4 GiB holding 512 MiB in 4 MiB
    extents, cold: 1.10 -> 0.86 s).
    """

    def __init__(self, fd: int, pieces: list[tuple[bool, int, int]]) -> None:
        self._fd = fd
        self._data = [(offset, length) for is_data, offset, length in pieces if is_data]
        self._asked = 0  # ranges before this index were asked for (or are being copied)
        self._ahead = 0  # bytes of the ranges asked for that the copy has not started

    def starting(self, index: int) -> None:
        """The copy starts data range `index`: keep PREFETCH bytes of the next ones asked for."""
        if index < self._asked:
            self._ahead -= self._data[index][1]
        self._asked = max(self._asked, index + 1)
        while self._ahead < PREFETCH and self._asked < len(self._data):
            offset, length = self._data[self._asked]
            os.posix_fadvise(self._fd, offset, min(length, PREFETCH - self._ahead),
                             os.POSIX_FADV_WILLNEED)
            self._ahead += length
            self._asked += 1


def _copy_segments(src: int, dst: int, size: int, pair: tuple[int, int],
                   verifier: _Verifier | None, on_chunk: OnChunk | None) -> str:
    os.ftruncate(dst, size)  # holes at the end stay holes; ranges are written in place
    used: set[str] = set()
    buffer = bytearray(_READ)
    done = 0
    pieces = list(segments(src, size))
    readahead = _Readahead(src, pieces)
    data_index = 0
    for is_data, offset, length in pieces:
        if is_data and PREFETCH:
            readahead.starting(data_index)
            data_index += 1
        end = offset + length
        while offset < end:
            step = min(CHUNK, end - offset) if is_data else end - offset
            if is_data:
                _copy_range(src, dst, offset, step, pair, used, buffer)
                start_writeback(dst, offset, step)
            if verifier:
                verifier.submit(is_data, offset, step)
            offset += step
            done += step
            if on_chunk:
                on_chunk(done)
    if READ_WRITE in used:
        return READ_WRITE
    if COPY_FILE_RANGE in used or _allowed(pair, COPY_FILE_RANGE):
        return COPY_FILE_RANGE
    return READ_WRITE  # all holes: nothing was copied, name what would have been used


def open_destination(path: str) -> int:
    """A new, empty destination opened read-write (the verifier reads it back); 0640 at most:
    image bytes are data, not for every local user (docs/architecture.md, issue 18 item 7)."""
    return os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o640)


def copy_file(src_path: str, dst_path: str, *, algorithm: str | None = None,
              on_chunk: OnChunk | None = None,
              while_verifying: Callable[[], None] | None = None) -> CopyResult:
    """Copy `src_path` to `dst_path` (created/truncated) by the cheapest primitive; fsync it
    (`while_verifying`: see copy_fd)."""
    src = os.open(src_path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        dst = open_destination(dst_path)
        try:
            return copy_fd(src, dst, algorithm=algorithm, on_chunk=on_chunk,
                           while_verifying=while_verifying)
        finally:
            os.close(dst)
    finally:
        os.close(src)


@dataclass(frozen=True)
class Probe:
    """Whether one primitive works between two filesystems, and the kernel's answer if not."""

    primitive: str
    ok: bool
    reason: str = ""


def probe(src_path: str, dst_dir: str) -> list[Probe]:
    """Try clone and copy_file_range from `src_path` to a temp file in `dst_dir`.

    Costs one clone (metadata only) or a one-byte copy; the temp file is removed. Used by
    `explain` to tell an operator which primitive a fetch would use.
    """
    src = os.open(src_path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK)
    tmp = os.path.join(dst_dir, f".probe-{os.getpid()}-{threading.get_ident()}")
    try:
        dst = open_destination(tmp)
        try:
            return [_probe_clone(src, dst), _probe_cfr(src, dst), Probe(READ_WRITE, True)]
        finally:
            os.close(dst)
            os.unlink(tmp)
    finally:
        os.close(src)


def _probe_clone(src: int, dst: int) -> Probe:
    try:
        fcntl.ioctl(dst, FICLONE, src)
        return Probe(CLONE, True)
    except OSError as exc:
        return Probe(CLONE, False, _errname(exc))


def _probe_cfr(src: int, dst: int) -> Probe:
    if os.fstat(src).st_size == 0:
        return Probe(COPY_FILE_RANGE, False, "empty source, not probed")
    os.ftruncate(dst, 0)
    try:
        os.copy_file_range(src, dst, 1, 0, 0)
        return Probe(COPY_FILE_RANGE, True)
    except OSError as exc:
        return Probe(COPY_FILE_RANGE, False, _errname(exc))
