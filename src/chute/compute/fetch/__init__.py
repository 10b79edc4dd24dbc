"""Getting an image's bytes into a `.part` file, verified: through the shared filesystem when
possible, else HTTP.

One WARNING per refused location says why (DirectPathUnavailable.reason/detail), in
place of Nova's tracebacks; the first location that copies and verifies wins; HTTP is the
last resort and its mismatch is fatal (IntegrityError).
"""

from __future__ import annotations

import errno
import logging
import os
from typing import TYPE_CHECKING, Callable
from urllib.parse import urlsplit

from chute.client.image import MISMATCH, Expected, Image, Location
from chute.compute.fetch import shared_fs
from chute.compute.fetch.candidates import candidates, filesystem_ids, image_filesystem_ids
from chute.compute.fetch.http import fetch_http
from chute.compute.image_service import ImageService
from chute.compute.instance import Transfer
from chute.errors import DirectPathUnavailable, TransferError
from chute.transfer import copy

if TYPE_CHECKING:  # settings.py imports shared_fs: no cycle at run time
    from chute.compute.settings import ImageServiceSettings

LOG = logging.getLogger("chute.compute.fetch")

WhileVerifying = Callable[[], None]

__all__ = ["Fetcher", "Transfer", "Location", "WhileVerifying", "candidates", "filesystem_ids",
           "image_filesystem_ids", "MISMATCH"]


class Fetcher:
    """Fills a `.part` path with one image's verified bytes; knows nothing of the cache."""

    def __init__(self, settings: ImageServiceSettings, service: ImageService) -> None:
        self.service = service
        self.schemes = settings.allowed_direct_url_schemes
        self.filesystems = settings.filesystems
        self.multihash_only = settings.verify_digest == "os_hash_value"

    def expected(self, image: Image) -> Expected:
        """What the image's bytes must be, by `[glance] verify_digest`; refuses an image
        whose data cannot be verified (TransferError)."""
        return Expected.required(image, self.multihash_only)

    def fetch(self, image: Image, part: str, want: Expected | None = None,
              while_verifying: WhileVerifying | None = None) -> Transfer:
        """`want`: the image's Expected when the caller has it already. `while_verifying`:
        see chute.transfer.copy.copy_fd; called only by a clone, so after any other transfer
        (or a clone that then failed its check, when another location or HTTP won) the
        caller still has that work to do: the Transfer's primitive says which."""
        if want is None:
            want = self.expected(image)
        if self.schemes:
            for location in candidates(image, self.service, self.filesystems):
                try:
                    return self.fetch_shared_fs(location, part, want, while_verifying)
                except DirectPathUnavailable as exc:
                    level = logging.INFO if exc.reason == "scheme_not_allowed" else logging.WARNING
                    LOG.log(level, "Direct path not used for %s: %s", location.url, exc.detail,
                            extra={"reason": exc.reason})
        transfer = fetch_http(self.service, image.id, part, want)
        LOG.info("Successfully transferred using http")
        return transfer

    def resolve(self, location: Location) -> tuple[str, shared_fs.Filesystem]:
        """The local path a location would be copied from, or DirectPathUnavailable."""
        scheme = urlsplit(location.url).scheme
        if scheme != "file" or scheme not in self.schemes:
            allowed = ", ".join(sorted(self.schemes)) or "none"
            why = ("is not in [glance] allowed_direct_url_schemes" if scheme == "file"
                   else "has no direct handler")
            raise DirectPathUnavailable(
                "scheme_not_allowed", f"scheme {scheme!r} {why} (allowed: {allowed})")
        return shared_fs.local_path(location.url, location.metadata, self.filesystems)

    def fetch_shared_fs(self, location: Location, part: str, want: Expected,
                        while_verifying: WhileVerifying | None = None) -> Transfer:
        path, fs = self.resolve(location)
        src = shared_fs.open_source(path, fs)
        try:
            size = os.fstat(src).st_size
            if size != want.size:
                raise DirectPathUnavailable(
                    "size_mismatch", f"{path} has {size} bytes, the image has {want.size}")
            result = _copy(src, path, part, want, while_verifying)
        except DirectPathUnavailable:
            _remove(part)
            raise
        finally:
            os.close(src)
        LOG.info("Copied %s using file (%s, %d bytes in %.3f s)", path, result.primitive,
                 result.nbytes, result.seconds)
        LOG.info("Successfully transferred using file")
        return Transfer("file", result.primitive, result.nbytes, result.seconds, path)


def _copy(src: int, path: str, part: str, want: Expected,
          while_verifying: WhileVerifying | None) -> copy.CopyResult:
    dst = copy.open_destination(part)
    try:
        result = copy.copy_fd(src, dst, algorithm=want.algorithm,
                              while_verifying=while_verifying)
    except copy.FailedBeside as failed:
        _require_match(path, want, failed.nbytes, failed.digest)  # wrong bytes: that first
        raise failed.error from None
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):  # HTTP would hit the same full disk
            raise TransferError(f"cannot write {part}: {exc.strerror}") from None
        raise DirectPathUnavailable("copy_failed", f"copying {path} failed: {exc}") from None
    finally:
        os.close(dst)
    _require_match(path, want, result.nbytes, result.digest)
    return result


def _require_match(path: str, want: Expected, nbytes: int, digest: str | None) -> None:
    problem = want.check(nbytes, digest)
    if problem is not None:
        reason = "size_mismatch" if nbytes != want.size else "hash_mismatch"
        raise DirectPathUnavailable(reason, f"{path} does not match the image: {problem}")


def _remove(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
