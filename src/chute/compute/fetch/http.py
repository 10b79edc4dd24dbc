"""The HTTP path: the image's bytes into the `.part` file from `/v2/images/{id}/file`, hashed
on the way, in one of two ways with one verification:

- `extents` (a chute extension): `GET /v2/images/{id}/extents` says where the data lies; each
  data extent comes with `Range: bytes=o-e` over the same keep-alive session and is written at
  its offset, holes stay unwritten and reach the digest as zeros (hashing.update_zeros), in
  order. A raw disk of 4 GiB holding 512 MiB of data then moves 512 MiB, not 4 GiB.
- `stream`: the whole image in one GET, as before, when the server does not offer extents (a
  real Glance answers 404 for the path), offers an answer we cannot use (malformed, unsorted,
  overlapping, out of range, another size) or does not honour Range for it.

Extents are untrusted hints: the size and the digest of the whole logical content are checked
at the end either way, so a server that calls data a hole ends in IntegrityError, not in a
base with zeros where the image has data.

Attempts, resuming after a drop and the choice of endpoint are the image service's
(chute.compute.image_service): a `_Download` only knows how far it got and how to go on.
Range and multipart reading is chute.client.byteranges; reading the bodies, hashing and
writing the file is the one download engine, chute.client.download.Receiver (the CLI's
`chute image-download` runs on it too): this module only says which bytes to ask for.
"""

from __future__ import annotations

import logging
import os
import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any, TypeGuard

from chute.client._http import Body
from chute.client.byteranges import Parts, RangesUnusable, check_content_range
from chute.client.download import ReadInto, Receiver
from chute.client.image import Expected
from chute.client.images import ImageClient
from chute.compute.image_service import ImageService
from chute.compute.instance import Transfer
from chute.errors import RemoteError, RemoteUnavailable, TransferError

LOG = logging.getLogger("chute.compute.fetch")

AHEAD = 4  # extent requests in flight beside the one being read (_Extents)
# Characters of ranges in one Range header: ~150 extents, well under gunicorn's 8190-byte
# limit_request_field_size (a longer header is refused with 400 before our code runs).
RANGE_HEADER = 4000
# One request per extent: more than the image service ever sends (it answers one extent over
# the whole image past 10,000) is a server we do not know; streaming is then the safer cost.
MAX_EXTENTS = 10_000

Plan = tuple[tuple[int, int], ...]  # (offset, length) of each data extent


class _Download:
    """One download's state across attempts: the file, the content done, the running digest
    (a chute.client.download.Receiver, which reads, hashes and writes; all-zero chunks and
    the holes between extents stay holes and reach the digest as zeros).

    `written` counts the image's bytes done in order - received, or known to be a hole and
    hashed as zeros - so a retry resumes there and progress means the same for both kinds.
    A chute.compute.image_service.Resumable.
    """

    primitive: str | None = None

    def __init__(self, fd: int, path: str, expected: Expected) -> None:
        self.expected = expected
        # O_DIRECT (chute.transfer.odirect, as the CLI's downloads): a write into fresh page
        # cache is a copy into newly touched pages, which on these VMs cost 0.4 to 3.8 CPU-s
        # per GiB, and left the final fsync the whole file to wait for. A 1 GiB HTTP boot,
        # A/B alternated on the shared 2-core machine (4 pairs, medians): 0.99 s and 0.42
        # agent CPU-s against 3.1 s and 0.65 through the page cache; the bench's sparse image
        # (4 GiB virtual, 512 MiB of data in 4 MiB extents), 6 rounds beside the dense one:
        # 0.69 s and 0.42 against 2.7 s and 1.9 (dense 0.60 s, 0.37 against 1.6 s, 1.2). The
        # hash is of the very buffer written, as before. ext4 allocates each O_DIRECT write on
        # its own, where delayed allocation placed a whole run at writeback: a base may get an
        # extent tree block more (16 MiB + 4 KiB for 16 MiB of data in four chunks); the
        # bench's sparse base allocates the same 512 MiB + 4 KiB either way.
        self.receiver = Receiver(fd, path, [expected.algorithm], holes=True, odirect=True)

    @property
    def written(self) -> int:
        return self.receiver.written

    @property
    def received(self) -> int:
        """Bytes that came over the network."""
        return self.receiver.received

    @property
    def size(self) -> int:
        return self.expected.size

    def attempt(self, client: ImageClient, image_id: str) -> None:
        raise NotImplementedError

    def _take(self, readinto: ReadInto, end: int) -> bool:
        """Bytes from `readinto` up to the image offset `end`; False: the source ended."""
        with _writing():
            return self.receiver.receive(readinto, end)

    def digest(self) -> str:
        """The digest of everything received, once every write is done."""
        with _writing():
            return self.receiver.finish()[self.expected.algorithm]

    def complete(self) -> bool:
        return self.written >= self.expected.size

    def close(self) -> None:
        self.receiver.close()


@contextmanager
def _writing() -> Iterator[None]:
    """A full disk is not a network problem: never retried (the source's errors are already
    chute.errors, so an OSError here is the file's)."""
    try:
        yield
    except OSError as exc:
        raise TransferError(f"cannot write the downloaded image: {exc.strerror}") from None


class _Stream(_Download):
    """The whole image in one GET (resumed with `Range: bytes=N-`)."""

    def attempt(self, client: ImageClient, image_id: str) -> None:
        try:
            body = client.data(image_id, [(self.written, None)] if self.written else [])
        except RemoteError as exc:
            if not (self.written and exc.status == 200):
                raise
            # This server ignores Range (a proxy, an old Glance): start over from byte 0.
            self.receiver.restart()
            body = client.data(image_id)
        with body:
            # One byte past the size at most: longer than the image, verification says so.
            self._take(body.readinto, self.expected.size + 1)


class _MultiRangeRefused(Exception):
    """The server answered several ranges with 400: ask for one extent per request."""


class _Extents(_Download):
    """Only the data extents, as range GETs; the holes between them are skipped.

    Many extents per request: `Range: bytes=a-b,c-d,...` answered as `multipart/byteranges`
    (a header of at most RANGE_HEADER characters, ~150 extents). A range request costs the
    image service ~3.3 ms of CPU and this host ~2 ms before any byte moves (measured: 128
    ranges of 4 KiB took 0.44 CPU-s in chute-api, 0.26 here), and the bench's sparse image
    has 128 extents of 4 MiB: one request instead of 128. An image service that refuses
    several ranges (a chute-api before this, 400) gets one request per extent instead.

    The next AHEAD requests go out from helper threads while this one's body is read (each on
    its own keep-alive connection of the session's pool), so the time to first byte hides
    behind the transfer when there are several requests. Bodies are still read strictly in
    order by the calling thread, into the receiver, which hashes and writes them in order.
    """

    primitive = "extents"

    def __init__(self, fd: int, path: str, expected: Expected, plan: Plan) -> None:
        super().__init__(fd, path, expected)
        self.plan = plan
        self.index = 0  # the extent being fetched
        self.multi = True  # False once the server refused several ranges in one request
        self._skip_hole()

    def attempt(self, client: ImageClient, image_id: str) -> None:
        try:
            self._attempt(client, image_id)
        except _MultiRangeRefused as exc:
            LOG.info("%s; asking for one extent per request", exc)
            self.multi = False
            self._attempt(client, image_id)

    def _attempt(self, client: ImageClient, image_id: str) -> None:
        batches = self._batches()
        ahead: deque[Future[Body]] = deque()  # the next batches' answers
        with ThreadPoolExecutor(AHEAD, thread_name_prefix="range") as pool:
            try:
                for number, batch in enumerate(batches):
                    body = (ahead.popleft().result() if ahead
                            else _open_ranges(client, image_id, batch))
                    for following in batches[number + 1 + len(ahead):number + 1 + AHEAD]:
                        ahead.append(pool.submit(_open_ranges, client, image_id, following))
                    self._receive(body, batch)
            finally:
                while ahead:
                    _discard(ahead.popleft())

    def _batches(self) -> list[list[tuple[int, int]]]:
        """The inclusive ranges still to fetch, grouped per request; the first starts at
        `written` (a resumed extent)."""
        ranges = [(offset, offset + length - 1) for offset, length in self.plan[self.index:]]
        if ranges:
            ranges[0] = (self.written, ranges[0][1])
        if not self.multi:
            return [[one] for one in ranges]
        batches: list[list[tuple[int, int]]] = []
        used = RANGE_HEADER
        for first, last in ranges:
            spec = len(f"{first}-{last},")
            if used + spec > RANGE_HEADER:
                batches.append([])
                used = 0
            batches[-1].append((first, last))
            used += spec
        return batches

    def _skip_hole(self) -> None:
        """Up to the next extent, or the end. Done right after the data before it, so a
        failed attempt that received nothing made no progress (it counts as a failure)."""
        following = self.plan[self.index][0] if self.index < len(self.plan) else None
        self.receiver.skip((self.expected.size if following is None else following)
                           - self.written)

    def _receive(self, body: Body, batch: list[tuple[int, int]]) -> None:
        """The extents of `batch` from its answer, each followed by its hole; closes it."""
        with body:
            server = body.endpoint
            if len(batch) == 1:
                check_content_range(body.header("Content-Range"), server, batch[0], self.size)
                parts = None
            else:
                parts = Parts(body)
            for first, last in batch:
                if parts is not None:
                    check_content_range(parts.next_part(), server, (first, last), self.size)
                self._read_extent(body if parts is None else parts, server, first, last + 1)
                self.index += 1
                self._skip_hole()
            if parts is not None:
                parts.finish()
            elif body.read(1):
                raise RangesUnusable(f"{server} sent more than the range {batch[0]}")

    def _read_extent(self, source: Body | Parts, server: str, first: int, end: int) -> None:
        """Bytes `first`..`end` (exclusive) from `source`, into the receiver's buffers."""
        readinto = source.readinto if isinstance(source, Parts) else _range_reader(source)
        if not self._take(readinto, end):
            raise RemoteUnavailable(f"{server} ended the range {first}-{end - 1} after "
                                    f"{self.written - first} bytes")


def _range_reader(body: Body) -> ReadInto:
    return lambda buffer: body.readinto(buffer, ranges=True)


def _open_ranges(client: ImageClient, image_id: str, batch: list[tuple[int, int]]) -> Body:
    try:
        return client.data(image_id, batch)
    except RemoteError as exc:
        if exc.status == 200:  # Range ignored: the body would be the whole image
            raise RangesUnusable(f"{client.endpoint} ignored a Range request") from None
        if exc.status == 400 and len(batch) > 1:
            raise _MultiRangeRefused(f"{client.endpoint} refused {len(batch)} ranges in one "
                                     f"request ({exc.message})") from None
        raise


def _discard(ahead: Future[Body]) -> None:
    """A request sent ahead for an extent this attempt will not reach: drop its answer."""
    try:
        ahead.result().close()
    except Exception:  # noqa: BLE001 - its failure is moot; the attempt's own error stands
        pass


def parse_extents(doc: object, size: int) -> Plan:
    """The extents answer as a plan, or ValueError saying why it cannot be trusted."""
    if not isinstance(doc, dict) or not isinstance(doc.get("extents"), list):
        raise ValueError("not an object with an extents list")
    if not _integer(doc.get("size")) or doc["size"] != size:
        raise ValueError(f"size {doc.get('size')!r} where the image has {size}")
    if len(doc["extents"]) > MAX_EXTENTS:
        raise ValueError(f"{len(doc['extents'])} extents (more than {MAX_EXTENTS})")
    plan: list[tuple[int, int]] = []
    end = 0
    for item in doc["extents"]:
        fields: dict[str, Any] = item if isinstance(item, dict) else {}
        offset, length = fields.get("offset"), fields.get("length")
        if not _integer(offset) or not _integer(length) or length <= 0:
            raise ValueError(f"extent {item!r} is not an offset and a positive length")
        if offset < end:
            raise ValueError(f"extent at {offset} overlaps or precedes the one ending at {end}")
        if offset + length > size:
            raise ValueError(f"extent {offset}+{length} ends past the size {size}")
        plan.append((offset, length))
        end = offset + length
    return tuple(plan)


def _integer(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _plan(service: ImageService, image_id: str, size: int) -> Plan | None:
    """The data extents the image service offers; None: download the whole image."""
    answer = service.extents(image_id)
    if answer is None:
        return None
    server, doc = answer
    try:
        plan = parse_extents(doc, size)
    except ValueError as exc:
        LOG.warning("Not using the extents %s gave for image %s: %s; downloading all of it",
                    server, image_id, exc)
        return None
    # All data (a dense image, or the server's answer past its cap): nothing to skip, so
    # the plain GET, which also leaves all-zero chunks as holes.
    return None if plan == ((0, size),) else plan


def fetch_http(service: ImageService, image_id: str, dst_path: str,
               expected: Expected) -> Transfer:
    """Download into `dst_path` (truncated), verify size and digest, fsync; raise on failure."""
    started = time.monotonic()
    fd = os.open(dst_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o640)
    download: _Download | None = None
    try:
        plan = _plan(service, image_id, expected.size)
        download = (_Stream(fd, dst_path, expected) if plan is None
                    else _Extents(fd, dst_path, expected, plan))
        try:
            server = service.download(image_id, download)
        except RangesUnusable as exc:
            LOG.warning("Extents of image %s not usable: %s; downloading all of it", image_id,
                        exc)
            download.close()
            os.ftruncate(fd, 0)
            download = _Stream(fd, dst_path, expected)
            server = service.download(image_id, download)
        expected.require(download.written, download.digest())
        os.ftruncate(fd, download.written)  # trailing holes and all-zero chunks stay holes
        os.fsync(fd)
    finally:
        if download is not None:
            download.close()
        os.close(fd)
    seconds = time.monotonic() - started
    LOG.info("Downloaded image %s from %s using http (%s, %d of %d bytes received in %.3f s)",
             image_id, server, download.primitive or "stream", download.received,
             download.written, seconds)
    return Transfer("http", download.primitive, download.written, seconds, server)
