"""Writing a file front to back around the page cache (O_DIRECT), where the filesystem allows.

Why: on these VMs a write(2) into fresh page cache is a copy into newly touched guest pages,
and it cost 0.4 s of kernel CPU per GiB in some runs and 3.6-3.8 s in others, more than MD5
of the same bytes; O_DIRECT writes of the same GiB took 0.17-0.22 s every time. The disk also
takes them better: 1 GiB in 4 MiB O_DIRECT writes then fsync ran at 830-990 MB/s in three
runs where the same through the page cache ran at 210-810 MB/s. A profile of a 1 GiB upload
to chute-api found 30% of both cores in that page-cache copy (copy_folio_from_iter_atomic).

O_DIRECT wants the buffer's address, the file offset and the length aligned to the logical
block size (ALIGN). A chunk that already is (an upload lands in page-aligned mappings, see
chute.images.upload) is written as it is, without a copy; anything else is staged in an
aligned buffer first. The unaligned tail goes through the ordinary descriptor at close(), and
the caller's fsync of that descriptor stays the durability check for both. A filesystem that
refuses O_DIRECT (EINVAL at open or at a write: some FUSE and network ones) just gets the
ordinary descriptor for the rest.
"""

from __future__ import annotations

import errno
import mmap
import os

ALIGN = 4096
STAGE = 4 << 20  # bytes staged before they are written: the size of one chunk


class ODirectFile:
    """Sequential writes of the file open on `fd`, through a second descriptor with O_DIRECT.

    skip() leaves a hole. Not thread-safe: one writer thread owns it.
    """

    def __init__(self, fd: int, direct: int) -> None:
        self._fd, self._odirect = fd, direct
        self._stage: mmap.mmap | None = None  # made on first need: aligned uploads never stage
        self._view = memoryview(b"")
        self._held = 0  # staged bytes not yet written
        self._offset = 0  # file offset of the first staged byte (of the next byte if none)
        self._unstaged = True  # try aligned chunks as they are, until one is refused

    @classmethod
    def open(cls, fd: int, path: str) -> ODirectFile | None:
        """A ODirectFile for `path` (open on `fd`), or None where O_DIRECT is not to be had."""
        flag = getattr(os, "O_DIRECT", 0)  # Linux and the BSDs have it; macOS does not
        if not flag:
            return None
        try:
            direct = os.open(path, os.O_WRONLY | os.O_CLOEXEC | flag)
        except OSError:
            return None
        return cls(fd, direct)

    def write(self, chunk: bytes | memoryview) -> None:
        view = memoryview(chunk).cast("B")
        if not self._held and self._unstaged and self._odirect >= 0 and not self._offset % ALIGN:
            view = self._write_unstaged(view)
        while view:
            if self._stage is None:
                self._stage = mmap.mmap(-1, STAGE + ALIGN,
                                        flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
                self._view = memoryview(self._stage)
            step = min(len(view), STAGE + ALIGN - self._held)
            self._view[self._held:self._held + step] = view[:step]
            self._held += step
            view = view[step:]
            self._drain(self._held - self._held % ALIGN)

    def skip(self, nbytes: int) -> bool:
        """Leave a hole of `nbytes` if alignment allows (nothing staged, whole blocks); False
        when it does not, and the caller writes the zeros instead."""
        if self._held or self._offset % ALIGN or nbytes % ALIGN:
            return False
        self._offset += nbytes
        return True

    def _write_unstaged(self, view: memoryview) -> memoryview:
        """Write the whole blocks at the start of `view` from where they are; -> the rest."""
        whole = len(view) - len(view) % ALIGN
        done = 0
        try:
            while done < whole:
                with view[done:whole] as part:
                    done += os.pwrite(self._odirect, part, self._offset + done)
        except OSError as exc:
            if exc.errno != errno.EINVAL:
                raise
            self._unstaged = False  # an unaligned address (or no O_DIRECT): stage from now on
        self._offset += done
        return view[done:]

    def _drain(self, nbytes: int) -> None:
        """Write the first `nbytes` staged bytes and keep the rest at the stage's start."""
        done = 0
        while done < nbytes:
            # Released even when the write raises (ENOSPC): a live slice would keep discard()
            # from closing the stage.
            with self._view[done:nbytes] as part:
                done += self._write_part(part, self._offset + done)
        rest = self._held - nbytes
        self._view[:rest] = self._view[nbytes:self._held]
        self._held, self._offset = rest, self._offset + nbytes

    def _write_part(self, part: memoryview, offset: int) -> int:
        if self._odirect >= 0:
            try:
                return os.pwrite(self._odirect, part, offset)
            except OSError as exc:
                if exc.errno != errno.EINVAL:
                    raise
                self._close_direct()
        return os.pwrite(self._fd, part, offset)

    def _close_direct(self) -> None:
        if self._odirect >= 0:
            os.close(self._odirect)
            self._odirect = -1

    def close(self) -> None:
        """Write the partial last block the ordinary way, then release what we hold."""
        try:
            if self._held:
                self._close_direct()
                self._drain(self._held)
        finally:
            self.discard()

    def discard(self) -> None:
        """Release the O_DIRECT descriptor and the stage without writing what it holds."""
        self._close_direct()
        self._view.release()
        if self._stage is not None:
            self._stage.close()
            self._stage = None
