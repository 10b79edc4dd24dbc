"""The agent's side of pre-caching (Nova 2.81): `POST /internal/v1/images/{image_id}/precache`
fetches the image into this host's `_base` through the image cache a boot uses, so the boots
that follow find it there and copy nothing. It answers 202 once the image is known and active;
the fetch runs on the manager's build workers, and the next heartbeat lists the image among the
host's cached ones (what the compute API shows as the host's progress).
"""

from __future__ import annotations

import functools
import logging

import falcon

from chute.client.image import Image
from chute.compute.manager import ComputeManager
from chute.errors import BadComputeRequest, ChuteError, ComputeNotFound, RemoteError

LOG = logging.getLogger(__name__)


class ImagePrecache:
    def __init__(self, manager: ComputeManager) -> None:
        self.manager = manager

    def on_post(self, req: falcon.Request, resp: falcon.Response, image_id: str) -> None:
        try:
            image = self.manager.client.get(image_id)
        except RemoteError as exc:
            if exc.status == 404:
                raise ComputeNotFound(f"Image {image_id} could not be found.") from None
            raise
        if image.status != "active":
            raise BadComputeRequest(f"Image {image_id} is not active (status {image.status}).")
        LOG.info("Pre-caching image %s into the image cache", image_id)
        self.manager.submit(functools.partial(self._fetch, image))
        resp.status = falcon.HTTP_202

    def _fetch(self, image: Image) -> None:
        try:
            fetched = self.manager.cache.fetch(image)
        except ChuteError as exc:
            LOG.warning("Pre-caching image %s failed: %s", image.id, exc.message)
            return
        LOG.info("Pre-cached image %s (%s)", image.id, fetched.method)
