"""python-glanceclient's shell (`glance`) with several stores: `stores-info`, `image-create
--store`, `image-import --import-method copy-image --stores`, `stores-delete`, against a real
chute-api with two filesystem stores."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.images import show
from tests.helpers.polling import wait_for
from tests.helpers.services import ApiServer
from tests.helpers.stores import datadir, prepare_stores_api

GLANCE = str(Path(sys.executable).parent / "glance")


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    server = prepare_stores_api(tmp_path_factory.mktemp("stores-shell")).start()
    yield server
    server.kill()


def _no_stdin() -> None:
    """As from a terminal: glanceclient takes a readable non-terminal stdin as image data."""
    os.close(0)


def glance(api: ApiServer, *args: str) -> str:
    proc = subprocess.run([GLANCE, "--os-image-url", api.url, "--os-auth-token", "x", *args],
                          capture_output=True, text=True, timeout=120, check=False,
                          env={"HOME": str(api.root), "PATH": "/usr/bin:/bin",
                               "LC_ALL": "C.UTF-8"}, preexec_fn=_no_stdin)
    assert proc.returncode == 0, (args, proc.stderr)
    return proc.stdout


def table(text: str) -> dict[str, str]:
    rows: dict[str, str] = {}
    for line in text.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|", 1)]
        if line.startswith("|") and len(cells) == 2 and cells[0] not in ("Property", ""):
            rows[cells[0]] = cells[1]
    return rows


def test_stores_through_the_glance_shell(api, tmp_path):
    info = glance(api, "stores-info")
    assert "rack1" in info and "rack2" in info
    disk = tmp_path / "disk.raw"
    disk.write_bytes(os.urandom(256 << 10))
    made = table(glance(api, "image-create", "--name", "racked", "--disk-format", "raw",
                        "--container-format", "bare", "--file", str(disk), "--store", "rack2"))
    image_id = made["id"]
    assert made["status"] == "active" and made["stores"] == "rack2"
    assert (datadir(api, "rack2") / image_id).read_bytes() == disk.read_bytes()

    glance(api, "image-import", image_id, "--import-method", "copy-image", "--stores", "rack1")
    wait_for(lambda: show(api, image_id)["stores"] == "rack2,rack1", 30, "the copy to rack1")
    assert (datadir(api, "rack1") / image_id).read_bytes() == disk.read_bytes()

    glance(api, "stores-delete", image_id, "--store", "rack2")
    assert show(api, image_id)["stores"] == "rack1"
    assert not (datadir(api, "rack2") / image_id).exists()
