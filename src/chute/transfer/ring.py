"""Reused, page-aligned buffers for a stream that is read, hashed and written at once.

Each buffer is its own anonymous mapping, not a bytearray or a bytes object, for two reasons:
- it is page-aligned, so an O_DIRECT write takes it as it is (chute.transfer.odirect), where an
  unaligned one is first copied into an aligned stage: that copy was 0.2 s of the writer
  thread's 0.85 s per GiB in a CLI download, on the pipeline's slowest step;
- it never passes through malloc: a freed 4 MiB bytearray raises glibc's dynamic mmap
  threshold to 4 MiB (and its trim threshold to 8 MiB), after which such buffers come from
  the thread's arena, whose free top chunk malloc_trim does not release. Measured with a
  chute-api worker taking 16 MiB uploads: it grew 4 MiB at a time as uploads landed on new
  request threads (51 -> 67 MiB after 8); with mappings, unmapped as soon as the last view of
  them goes, it stays flat. Faulting a 16 MiB ring in again per stream costs 4096 page faults,
  a few milliseconds.

Each mapping asks for transparent huge pages (MADV_HUGEPAGE; THP is `madvise` by default on
many distributions): a 4 MiB buffer is then 2 pages instead of 1024, so faulting it in, pinning
it for each O_DIRECT write (get_user_pages, 6% of a CLI download's CPU in perf) and the TLB
misses of copying into it and hashing it cost less: reading 512 MiB and writing it with
O_DIRECT from one such buffer took 0.039 CPU-s against 0.049 (median of 4, alternated).
"""

from __future__ import annotations

import mmap
from concurrent.futures import Future

from chute.transfer.hashing import Hashed


class Slot:
    """One reusable buffer and what still holds it: its hashing and its write."""

    def __init__(self, size: int) -> None:
        buffer = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        try:
            buffer.madvise(mmap.MADV_HUGEPAGE)
        except (AttributeError, OSError):  # not Linux, or a kernel without THP: works the same
            pass
        self.view = memoryview(buffer)
        self.hashed: Hashed | None = None
        self.written: Future[None] | None = None

    def free(self) -> memoryview:
        """Wait until nobody reads the buffer any more (raising a write's error), then lend it."""
        if self.hashed is not None:
            self.hashed.wait()
        if self.written is not None:
            self.written.result()
        self.hashed = self.written = None
        return self.view


def ring(count: int, size: int) -> list[Slot]:
    return [Slot(size) for _ in range(count)]
