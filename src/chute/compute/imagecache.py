"""The host's image cache: `<instances_path>/_base/<sha1(image id)>`, one verified fetch per image.

(Interface stub: the implementation lands in the next commits.)
"""

from __future__ import annotations

from dataclasses import dataclass

from chute.config import Config


@dataclass(frozen=True)
class Fetched:
    """How a base came to be usable: fetched by `file` or `http`, or found in the `cache`."""

    path: str
    method: str  # "file" | "http" | "cache"
    primitive: str | None
    nbytes: int
    seconds: float


class ImageCache:
    def __init__(self, conf: Config, client: object) -> None:
        self.conf = conf
        self.client = client

    def fetch(self, image: dict) -> Fetched:
        raise NotImplementedError

    def cleanup(self, in_use_image_ids: set[str]) -> list[str]:
        raise NotImplementedError
