"""The image service as this host sees it: `[glance] api_servers`, tried in order.

All of compute's fail-over policy lives here, over plain single-endpoint ImageClients:

- metadata (`get`, the service-only `locations`): Nova sends every Glance call through one
  wrapper that moves to the next endpoint on a connection error (docs/architecture.md#nova-retries);
  here too, sticking to the endpoint that last worked, so one image API node down does not
  fail a build.
- data (`download`): Nova retried only the call that returned the body iterator, so a
  connection reset mid-stream failed the boot. Here a `Resumable` download is attempted over
  the endpoints in order, from the first; a drop after N bytes resumes at N (the download
  asks with `Range` on the next endpoint). The budget is `1 + num_retries` failures in a
  row: an attempt that made progress does not count (progress is bounded by the size, so
  this still ends), RETRY_DELAY apart. A mismatching digest is not retried: the service
  served those bytes, asking again would return the same.

Every error seen here is already a chute.errors one (chute.client._http translates the
libraries'); only RemoteUnavailable and 502/503/504 answers are worth another endpoint.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol, TypeVar

from chute.client.image import Image, Location
from chute.client.images import ImageClient
from chute.errors import ChuteError, RemoteError, RemoteUnavailable, TransferError

if TYPE_CHECKING:
    from chute.compute.settings import ImageServiceSettings

LOG = logging.getLogger(__name__)
FETCH_LOG = logging.getLogger("chute.compute.fetch")  # the download's lines, as operators know them

RETRY_DELAY = 1.0  # seconds between download attempts, as Nova

T = TypeVar("T")


class Resumable(Protocol):
    """A download that can be attempted again and carries on from what it has."""

    @property
    def written(self) -> int:
        """Bytes of the image done, in order: where the next attempt starts."""

    @property
    def size(self) -> int: ...

    def attempt(self, client: ImageClient, image_id: str) -> None:
        """Move bytes from `client` until done or an error; resumes at `written`."""

    def complete(self) -> bool: ...


class ImageService(Protocol):
    """What compute asks of the image service."""

    def get(self, image_id: str, token: str | None = None) -> Image:
        """The image; with `token`, as the user whose token it is sees it."""

    def locations(self, image_id: str) -> list[Location]: ...

    def extents(self, image_id: str) -> tuple[str, object] | None: ...

    def download(self, image_id: str, download: Resumable) -> str: ...


def retryable(exc: ChuteError) -> bool:
    """Worth trying again (maybe elsewhere): no answer, or a gateway's."""
    if isinstance(exc, RemoteUnavailable):
        return True
    return isinstance(exc, RemoteError) and exc.status in (502, 503, 504)


class FailoverImageService:
    """The ImageService over several endpoints (the module docstring's policy)."""

    def __init__(self, endpoints: list[str], token: str | Callable[[], str] | None = None,
                 timeout: float = 60, num_retries: int = 0) -> None:
        """`token`: this host's own, or a callable that returns a valid one each time (from
        Keystone, chute.auth.service_auth)."""
        if not endpoints:
            raise ValueError("at least one image service endpoint is needed")
        fixed = token if isinstance(token, str) else None
        self.clients = [ImageClient(endpoint, fixed, timeout) for endpoint in endpoints]
        self._token = token if callable(token) else None
        self.attempts = 1 + num_retries
        self._current = 0
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: ImageServiceSettings) -> FailoverImageService:
        token: str | Callable[[], str] | None = settings.service_token
        if settings.keystone is not None:
            from chute.auth.service_auth import token_provider
            token = token_provider(dict(settings.keystone))
        return cls(list(settings.api_servers), token=token, num_retries=settings.num_retries)

    def _as_this_host(self, client: ImageClient) -> ImageClient:
        """`client` carrying a token valid now (Keystone's expire; keystoneauth renews)."""
        if self._token is not None:
            client.api.session.headers["X-Auth-Token"] = self._token()
        return client

    @property
    def endpoint(self) -> str:
        return self.clients[self._current].endpoint

    # -- metadata -------------------------------------------------------------------------

    def get(self, image_id: str, token: str | None = None) -> Image:
        return Image.parse(self._call("get", lambda client: client.get(image_id, token)))

    def locations(self, image_id: str) -> list[Location]:
        return Location.parse_all(self._call("locations",
                                             lambda client: client.locations(image_id)))

    def _call(self, method: str, call: Callable[[ImageClient], T]) -> T:
        start = self._current
        error: RemoteUnavailable | None = None
        for step in range(len(self.clients)):
            index = (start + step) % len(self.clients)
            client = self.clients[index]
            try:
                result = call(self._as_this_host(client))
            except RemoteUnavailable as exc:
                LOG.warning("Error contacting image service %s for %s: %s%s", client.endpoint,
                            method, exc.message,
                            ", trying the next" if step + 1 < len(self.clients) else "")
                error = exc
                continue
            with self._lock:
                self._current = index
            return result
        assert error is not None
        raise error

    # -- data -----------------------------------------------------------------------------

    def extents(self, image_id: str) -> tuple[str, object] | None:
        """The extents answer (untrusted) of the first endpoint that gives one, with that
        endpoint; None when none does (download the whole image)."""
        for client in self.clients:
            try:
                return client.endpoint, self._as_this_host(client).extents(image_id)
            except ChuteError as exc:
                if retryable(exc):
                    FETCH_LOG.info("No extents of image %s from %s (%s)", image_id,
                                   client.endpoint, exc.message)
                    continue
                FETCH_LOG.info("%s offers no extents of image %s (%s); downloading all of it",
                               client.endpoint, image_id, exc.message)
                return None
        return None

    def download(self, image_id: str, download: Resumable) -> str:
        """Attempt `download` until complete; -> the endpoint that completed it."""
        failures, turn = 0, 0
        while True:
            client = self.clients[turn % len(self.clients)]
            before = download.written
            try:
                download.attempt(self._as_this_host(client), image_id)
                if download.complete():
                    return client.endpoint
                error: ChuteError = RemoteUnavailable(
                    f"{client.endpoint} ended the body after {download.written} of "
                    f"{download.size} bytes")
            except ChuteError as exc:
                if not retryable(exc):
                    raise
                error = exc
            failures = 0 if download.written > before else failures + 1
            if failures >= self.attempts:
                raise TransferError(f"downloading image {image_id} failed after "
                                    f"{self.attempts} attempt(s): {error.message}")
            FETCH_LOG.warning("Error downloading image %s from %s after %d bytes (%s), "
                              "retrying", image_id, client.endpoint, download.written,
                              error.message)
            turn += 1
            time.sleep(RETRY_DELAY)

    def close(self) -> None:
        for client in self.clients:
            client.close()
