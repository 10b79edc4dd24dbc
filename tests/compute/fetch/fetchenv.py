"""Fixtures for the image-fetch tests: a real chute-api, real uploads, a compute config.

The image service writes under `<api.root>/store`; the compute host sees the same files at
another path (`view`): a bind mount when permitted (root), else a symlinked directory. Hostile
cases that must still succeed over HTTP break a `mirror` instead: a separate copy of the
store tree used as the compute's mountpoint, so the image service keeps serving good bytes.

Imported by tests/compute/fetch/, tests/compute/test_imagecache.py and test_explain.py.
"""

from __future__ import annotations

import logging
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from chute import config
from chute.compute.options import SCHEMA
from chute.transfer import copy

FS_ID = "shared-fs-1"


def upload(api_url: str, data: bytes, disk_format: str = "raw", **fields: Any) -> dict:
    """Create an image and PUT its bytes; return the image document (active)."""
    body = {"name": "fetch-test", "disk_format": disk_format, "container_format": "bare",
            **fields}
    created = requests.post(f"{api_url}/v2/images", json=body, timeout=30)
    assert created.status_code == 201, created.text
    image_id = created.json()["id"]
    put = requests.put(f"{api_url}/v2/images/{image_id}/file", data=data, timeout=60,
                       headers={"Content-Type": "application/octet-stream"})
    assert put.status_code == 204, put.text
    image = requests.get(f"{api_url}/v2/images/{image_id}", timeout=30).json()
    assert image["status"] == "active"
    return image


def write_conf(path: Path, sections: dict[str, dict[str, Any]]) -> config.Config:
    lines = []
    for section, options in sections.items():
        lines.append(f"[{section}]")
        for name, value in options.items():
            if isinstance(value, (list, tuple)):
                value = ", ".join(str(v) for v in value)
            lines.append(f"{name} = {value}")
    path.write_text("\n".join(lines) + "\n")
    return config.load(path, SCHEMA)


def _bind(source: Path, target: Path) -> bool:
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
    api: Any  # tests/conftest.py ApiServer
    tmp: Path
    view: Path  # the compute host's path to the image service's store
    bound: bool  # view is a bind mount (else a symlink)

    @property
    def store(self) -> Path:
        return Path(self.api.root) / "store"

    def upload(self, data: bytes, disk_format: str = "raw", **fields: Any) -> dict:
        return upload(self.api.url, data, disk_format, **fields)

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
        return write_conf(self.tmp / name, merged)

    def mirror(self, image: dict) -> Path:
        """A private copy of the image's store file (holes kept) under a mountpoint to break."""
        target = self.tmp / "mirror"
        (target / "images").mkdir(parents=True, exist_ok=True)
        copy.copy_file(str(self.stored(image)), str(target / "images" / image["id"]))
        return target


@pytest.fixture
def fetch_env(shared_api, tmp_path: Path):
    """The session's default chute-api, its store seen by this test's compute at `view`."""
    api = shared_api
    view = tmp_path / "view"
    bound = _bind(Path(api.root) / "store", view)
    if not bound:
        view.symlink_to(Path(api.root) / "store", target_is_directory=True)
    copy.forget_refusals()
    env = FetchEnv(api, tmp_path, view, bound)
    yield env
    if bound:
        subprocess.run(["umount", str(view)], check=False)


@pytest.fixture
def fetch_log(caplog):
    """Records of chute.compute at INFO, as text lines."""
    caplog.set_level(logging.INFO, logger="chute.compute")
    return caplog


def lines(caplog, needle: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if needle in r.getMessage()]


def warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.levelno == logging.WARNING and r.name.startswith("chute.compute")]


