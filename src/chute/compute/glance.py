"""The image service as this host sees it: `[glance] api_servers`, tried in order.

Nova sends every Glance call (metadata as well as data) through one wrapper that moves to the
next endpoint on a connection error (nova-image-fetch.md 2.5). The HTTP download path does its
own attempts over the servers (chute.compute.fetch.http); this covers the metadata calls of a
boot (`get`, the service-only `locations`), so one image API node down does not fail a build.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import requests

from chute.client.images import ImageClient
from chute.errors import RemoteUnavailable

LOG = logging.getLogger(__name__)


class FailoverImageClient:
    """The ImageClient calls compute makes, over several endpoints; sticks to one that works."""

    def __init__(self, endpoints: list[str], token: str | None = None,
                 timeout: float = 60) -> None:
        if not endpoints:
            raise ValueError("at least one image service endpoint is needed")
        self.clients = [ImageClient(endpoint, token, timeout) for endpoint in endpoints]
        self._current = 0
        self._lock = threading.Lock()

    @property
    def endpoint(self) -> str:
        return self.clients[self._current].endpoint

    def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        start = self._current
        error: RemoteUnavailable | None = None
        for step in range(len(self.clients)):
            index = (start + step) % len(self.clients)
            client = self.clients[index]
            try:
                result = getattr(client, method)(*args, **kwargs)
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

    def get(self, image_id: str) -> dict[str, Any]:
        return self._call("get", image_id)

    def locations(self, image_id: str) -> list[dict[str, Any]]:
        return self._call("locations", image_id)

    def open_download(self, image_id: str, offset: int = 0) -> requests.Response:
        return self._call("open_download", image_id, offset)

    def close(self) -> None:
        for client in self.clients:
            client.close()
