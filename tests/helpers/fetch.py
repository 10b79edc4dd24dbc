"""The image-fetch tests' world: a real chute-api, real uploads, a compute config.

The image service writes under `<api.root>/store`; the compute host sees the same files at
another path (`view`): a bind mount when permitted (root), else a symlinked directory. Hostile
cases that must still succeed over HTTP break a `mirror` instead: a separate copy of the
store tree used as the compute's mountpoint, so the image service keeps serving good bytes.

The fixtures `fetch_env` and `fetch_log` that build it are in tests/compute/conftest.py.
"""

from __future__ import annotations

import logging
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chute import config
from chute.compute.options import SCHEMA
from chute.transfer import copy
from tests.helpers.images import upload_image
from tests.helpers.services import ApiServer, write_conf

FS_ID = "shared-fs-1"


def load_conf(path: Path, sections: dict[str, dict[str, Any]]) -> config.Config:
    """Write a compute config and load it as chute-compute would."""
    write_conf(path, sections)
    return config.load(path, SCHEMA)


def bind(source: Path, target: Path) -> bool:
    """Bind-mount `source` at `target` (a new directory) if permitted (root)."""
    if os.geteuid() != 0:
        return False
    target.mkdir()
    done = subprocess.run(["mount", "--bind", str(source), str(target)], capture_output=True)
    if done.returncode == 0:
        return True
    target.rmdir()
    return False


@dataclass
class FetchEnv:
    api: ApiServer
    tmp: Path
    view: Path  # the compute host's path to the image service's store
    bound: bool  # view is a bind mount (else a symlink)

    @property
    def store(self) -> Path:
        return Path(self.api.root) / "store"

    def upload(self, data: bytes, disk_format: str = "raw", **fields: Any) -> dict:
        return upload_image(self.api, data, disk_format, name=fields.pop("name", "fetch-test"),
                            **fields)

    def stored(self, image: dict) -> Path:
        return Path(self.api.datadir) / image["id"]

    def conf(self, name: str = "compute.conf", mountpoint: Path | None = None,
             fs_id: str = FS_ID, schemes: str = "file", **sections: dict[str, Any]
             ) -> config.Config:
        """A compute config whose filesystem `fs_id` is mounted at `mountpoint` (the view)."""
        merged: dict[str, dict[str, Any]] = {
            "DEFAULT": {"instances_path": self.tmp / "instances"},
            "glance": {"api_servers": self.api.url, "allowed_direct_url_schemes": schemes},
            "image_file_url": {"filesystems": "shared"},
            "image_file_url:shared": {"id": fs_id, "mountpoint": mountpoint or self.view},
        }
        for section, options in sections.items():
            merged.setdefault(section, {}).update(options)
        return load_conf(self.tmp / name, merged)

    def mirror(self, image: dict) -> Path:
        """A private copy of the image's store file (holes kept) under a mountpoint to break."""
        target = self.tmp / "mirror"
        (target / "images").mkdir(parents=True, exist_ok=True)
        copy.copy_file(str(self.stored(image)), str(target / "images" / image["id"]))
        return target


def http_conf(env: FetchEnv, servers: list[str], **glance: Any) -> config.Config:
    """A compute config that may fetch only over HTTP, from `servers` in turn."""
    return env.conf(schemes="", glance={"api_servers": ", ".join(servers), **glance})


def lines(caplog, needle: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if needle in r.getMessage()]


def warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.levelno == logging.WARNING and r.name.startswith("chute.compute")]
