"""Small image files for the CLI tests (the servers come from tests/conftest.py)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest


@pytest.fixture
def raw_image(tmp_path: Path) -> Path:
    """3 MiB of random bytes: a raw disk image whose every byte matters."""
    path = tmp_path / "disk.raw"
    path.write_bytes(os.urandom(3 * 1024 * 1024 + 123))
    return path


@pytest.fixture
def qcow2_image(tmp_path: Path) -> Path:
    """A real qcow2 made by qemu-img, with 1 MiB of data written into it by qemu-io."""
    path = tmp_path / "disk.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(path), "16M"], check=True)
    subprocess.run(["qemu-io", "-f", "qcow2", "-c", "write -P 0x5a 0 1M", str(path)],
                   check=True, capture_output=True)
    return path
