"""Where a download's bytes go: its file, written front to back by a thread of its own.

The writer runs beside the reading and the hashing (chute.client.download.Receiver) so the
slowest of the three alone sets the pace. Where the filesystem allows it the writes bypass the
page cache (chute.transfer.odirect): writes into fresh page cache set the download's pace in
the runs where they were slow (1-4 s per GiB on this machine, as long as the whole read and
hash); the same GiB through O_DIRECT took 0.67-1.04 s wall, fsync included, every time.
Elsewhere the writes go through the page cache and writeback starts every 64 MiB
(chute.transfer.writeback), so the final fsync waits for the tail only.

A stream (stdout, a pipe: `stream=True`) is written with plain write(2) at its own position,
neither O_DIRECT nor pwrite (a pipe has no offsets); it cannot hold holes.

One O_DIRECT write is in flight at a time. Writes of 16 MiB (four 4 MiB requests at once)
instead of 4 MiB: 1 GiB alone 1.11-1.19 s against 0.80-1.21 s, beside a cold read of another
GiB 1.35-1.58 s against 1.39-2.18 s (dd, 3 alternated runs each, shared disk): no clear gain.

Holes: skip() leaves bytes unwritten (the caller ftruncates to the size at the end). With
O_DIRECT only whole aligned blocks can be skipped; a hole that is not (an extent of odd length,
a short all-zero tail) ends O_DIRECT for the rest of the file, its staged tail written the
ordinary way, so a hole always stays a hole.
"""

from __future__ import annotations

import collections
import os
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

from chute.transfer.odirect import ODirectFile
from chute.transfer.writeback import Writeback

T = TypeVar("T")


class FileSink:
    """Writes chunks and holes to `fd` (the file at `path`) in order, from offset 0, in a
    thread. The caller bounds what waits (write() returns each chunk's future, which it holds
    until it reuses the buffer); flush() waits for everything, close() cancels what has not
    started."""

    def __init__(self, fd: int, path: str, odirect: bool = True, stream: bool = False) -> None:
        self._fd = fd
        self._stream = stream
        self._end = 0  # file offset of the next byte
        self._odirect = ODirectFile.open(fd, path) if odirect and not stream else None
        # O_DIRECT writes reach the disk as they are made; only page-cache writes need pushing.
        self._writeback = Writeback(fd) if self._odirect is None and not stream else None
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="download-write")
        self._pending: collections.deque[Future[None]] = collections.deque()

    @property
    def odirect(self) -> bool:
        return self._odirect is not None

    def write(self, chunk: bytes | memoryview) -> Future[None]:
        """Queue `chunk`; it must stay unchanged until the future is done."""
        return self._submit(self._write, chunk)

    def skip(self, nbytes: int) -> Future[None]:
        """Queue a hole of `nbytes`."""
        return self._submit(self._skip, nbytes)

    def _submit(self, work: Callable[[T], None], arg: T) -> Future[None]:
        while self._pending and self._pending[0].done():
            self._pending.popleft().result()  # a failed write raises here at the latest
        future = self._pool.submit(work, arg)
        self._pending.append(future)
        return future

    def _write(self, chunk: bytes | memoryview) -> None:
        size = len(chunk)
        if self._odirect is not None:
            self._odirect.write(chunk)
        elif self._stream:
            view, done = memoryview(chunk), 0
            while done < size:
                with view[done:] as rest:
                    done += os.write(self._fd, rest)
        else:
            view, done = memoryview(chunk), 0
            while done < size:
                with view[done:] as rest:
                    done += os.pwrite(self._fd, rest, self._end + done)
            if self._writeback is not None:
                self._writeback.written(self._end + size)
        self._end += size

    def _skip(self, nbytes: int) -> None:
        if self._stream:
            raise ValueError("a stream cannot hold holes")
        if self._odirect is not None and not self._odirect.skip(nbytes):
            self._odirect.close()  # the staged tail, through the ordinary descriptor
            self._odirect = None
            self._writeback = Writeback(self._fd)
        self._end += nbytes

    def flush(self) -> None:
        """Wait for every write (raising the first failure) and write the unaligned tail."""
        while self._pending:
            self._pending.popleft().result()
        if self._odirect is not None:
            self._odirect.close()
            self._odirect = None

    def close(self) -> None:
        """Cancel what has not started, wait for what has; the file is discarded or its
        writes were flushed."""
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._pending.clear()
        if self._odirect is not None:
            self._odirect.discard()
            self._odirect = None

    def __enter__(self) -> FileSink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
