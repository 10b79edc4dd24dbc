"""python-glanceclient's shell (`glance`), every command that Glance 33 without multi-store
answers with success and chute serves, on one image's life; the README lists the others and
why. Any token will do: it only keeps the client from looking for Keystone."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
from glanceclient import Client

GLANCE = str(Path(sys.executable).parent / "glance")


def _no_stdin() -> None:
    """As from a terminal: glanceclient takes a readable non-terminal stdin as image data."""
    os.close(0)


def glance(cloud, *args: str) -> str:
    proc = subprocess.run([GLANCE, "--os-image-url", cloud.api.url, "--os-auth-token", "x",
                           *args], capture_output=True, text=True, env=cloud.env(),
                          timeout=120, check=False, preexec_fn=_no_stdin)
    assert proc.returncode == 0, (args, proc.stderr)
    return proc.stdout


def table(text: str) -> dict[str, str]:
    """glanceclient's Property/Value table as a dict (continuation lines joined)."""
    rows: dict[str, str] = {}
    last = ""
    for line in text.splitlines():
        if not line.startswith("|"):
            continue
        key, value = (cell.strip() for cell in line.strip("|").split("|", 1))
        if key in ("Property", "Field"):
            continue
        if key:
            rows[key], last = value, key
        else:
            rows[last] += value
    return rows


@pytest.fixture(scope="module")
def disk(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("glance-shell") / "disk.raw"
    path.write_bytes(bytes(range(256)) * 4096)
    return path


def test_an_image_life_through_the_glance_shell(cloud, disk, tmp_path):
    made = table(glance(cloud, "image-create", "--name", "shell", "--disk-format", "raw",
                        "--container-format", "bare", "--file", str(disk),
                        "--property", "os_distro=debian"))
    image_id = made["id"]
    assert made["status"] == "active" and made["os_distro"] == "debian"
    assert made["checksum"] == hashlib.md5(disk.read_bytes()).hexdigest()
    assert image_id in glance(cloud, "image-list")
    assert table(glance(cloud, "image-show", image_id))["size"] == str(disk.stat().st_size)

    updated = table(glance(cloud, "image-update", image_id, "--name", "shell2",
                           "--property", "hw_disk_bus=scsi", "--remove-property", "os_distro"))
    assert updated["name"] == "shell2" and "os_distro" not in updated
    glance(cloud, "image-tag-update", image_id, "golden")
    assert "golden" in table(glance(cloud, "image-show", image_id))["tags"]
    glance(cloud, "image-tag-delete", image_id, "golden")
    assert "golden" not in table(glance(cloud, "image-show", image_id))["tags"]

    glance(cloud, "image-download", image_id, "--file", str(tmp_path / "copy"))
    assert (tmp_path / "copy").read_bytes() == disk.read_bytes()
    glance(cloud, "image-deactivate", image_id)
    assert table(glance(cloud, "image-show", image_id))["status"] == "deactivated"
    glance(cloud, "image-reactivate", image_id)
    glance(cloud, "image-delete", image_id)
    assert image_id not in glance(cloud, "image-list")


def test_an_upload_into_a_queued_image(cloud, disk):
    queued = table(glance(cloud, "image-create", "--name", "later", "--disk-format", "raw",
                          "--container-format", "bare"))
    assert queued["status"] == "queued"
    glance(cloud, "image-upload", queued["id"], "--file", str(disk))
    assert table(glance(cloud, "image-show", queued["id"]))["status"] == "active"


def test_explain_and_usage_read_the_schema_and_the_quota_document(cloud):
    explained = glance(cloud, "explain", "image")
    assert "os_hash_value" in explained and "os_glance_blake3_blocks" in explained
    usage = glance(cloud, "usage")
    assert usage.splitlines()[1:] == ["| Quota | Limit | Usage |", "+-------+-------+-------+",
                                      "+-------+-------+-------+"]  # no rows, as Glance


def test_image_create_via_import_stages_then_imports(cloud, disk):
    """`glance image-create-via-import --file`: create, stage, glance-direct import; the shell
    reads /v2/info/import first to see that glance-direct is offered."""
    made = table(glance(cloud, "image-create-via-import", "--name", "imported",
                        "--disk-format", "raw", "--container-format", "bare",
                        "--import-method", "glance-direct", "--file", str(disk)))
    shown = table(glance(cloud, "image-show", made["id"]))
    assert shown["status"] == "active"
    assert shown["checksum"] == hashlib.md5(disk.read_bytes()).hexdigest()
    assert f"image {made['id']}: uploading -> importing -> active (glance-direct" in \
        cloud.api.log_path.read_text()
    info = table(glance(cloud, "import-info"))["import-methods"]
    assert "glance-direct" in info and "web-download" in info

    # The import's task is served as Glance 33 serves it, and, as Glance without multi-store,
    # not advertised: /versions stops at 2.9 (2.12 also means multi-store's 2.8-2.11), and
    # glanceclient asks for v2.12 by name before it reads the tasks.
    tasks = subprocess.run([GLANCE, "--os-image-url", cloud.api.url, "--os-auth-token", "x",
                            "image-tasks", made["id"]], capture_output=True, text=True,
                           env=cloud.env(), timeout=120, check=False, preexec_fn=_no_stdin)
    assert tasks.returncode == 1
    assert "Server does not support image tasks API (v2.12)" in tasks.stderr
    client = Client("2", endpoint=cloud.api.url, token="x")
    _, body = client.http_client.get(f"/v2/images/{made['id']}/tasks")
    [task] = body["tasks"]
    assert (task["type"], task["status"], task["result"]) == (
        "api_image_import", "success", {"image_id": made["id"]})
