"""python-glanceclient, unchanged, against chute-api: the `glance` CLI and its Python API."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import pty
import re
import subprocess
import sys
import uuid
from pathlib import Path

import glanceclient
import pytest
from glanceclient import exc as glance_exc

# A client's compatibility: what it stores is checked on each backend by test_images_api.
pytestmark = pytest.mark.backend_independent

GLANCE = str(Path(sys.executable).parent / "glance")


@pytest.fixture
def glance_env(tmp_path: Path) -> dict[str, str]:
    """A clean environment: glanceclient caches schemas under ~/.glanceclient."""
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
    env["HOME"] = str(home)
    return env


@pytest.fixture
def qcow2_file(tmp_path: Path) -> Path:
    path = tmp_path / "fedora-test.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(path), "32M"], check=True)
    subprocess.run(["qemu-io", "-f", "qcow2", "-c", "write -P 0xa5 1M 2M", str(path)],
                   check=True, capture_output=True)
    return path


def glance(api, env, *args: str, tty: bool = False) -> tuple[int, str, str]:
    """Run the real `glance` CLI; with tty=True its stdout is a terminal, which is the only
    case where glanceclient draws its progress bar."""
    cmd = [GLANCE, "--os-image-url", api.url, "--os-auth-token", "x", *args]
    if not tty:
        proc = subprocess.run(cmd, check=False, capture_output=True, text=True, env=env,
                              timeout=120, stdin=subprocess.DEVNULL)
        return proc.returncode, proc.stdout, proc.stderr
    master, slave = pty.openpty()
    proc = subprocess.Popen(cmd, stdout=slave, stderr=subprocess.PIPE, env=env,
                            stdin=subprocess.DEVNULL)
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError as error:  # EIO: the child closed the terminal
            if error.errno != errno.EIO:
                raise
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    stderr = proc.stderr.read().decode()
    proc.wait(timeout=120)
    return proc.returncode, b"".join(chunks).decode().replace("\r\n", "\n"), stderr


def parse_table(text: str) -> dict[str, str]:
    """glanceclient's Property/Value table as a dict; wrapped values joined without spaces
    (so compare JSON with whitespace removed)."""
    rows: dict[str, str] = {}
    key = None
    for line in text.splitlines():
        match = re.fullmatch(r"\| (\S*) *\| (.*?) *\|", line.strip())
        if not match or match.group(1) == "Property":
            continue
        if match.group(1):
            key = match.group(1)
            rows[key] = match.group(2)
        elif key:
            rows[key] += match.group(2)
    return rows


def squash(text: str) -> str:
    return re.sub(r"\s", "", text)


def test_glance_cli_full_flow(shared_api, glance_env, qcow2_file, tmp_path):
    data = qcow2_file.read_bytes()
    code, out, err = glance(shared_api, glance_env, "image-create", "--file", str(qcow2_file),
                            "--name", "fedora-test", "--disk-format", "qcow2",
                            "--container-format", "bare", "--progress", tty=True)
    assert code == 0, err + out
    assert re.search(r"\[=+>\] 100%", out), out  # glanceclient's own progress bar
    created = parse_table(out)
    image_id = created["id"]
    assert created["status"] == "active"
    assert created["checksum"] == hashlib.md5(data).hexdigest()
    assert created["os_hash_value"] == hashlib.sha512(data).hexdigest()
    assert created["virtual_size"] == str(32 * 1024 * 1024)

    code, out, err = glance(shared_api, glance_env, "image-show", image_id)
    assert code == 0, err
    shown = parse_table(out)
    store = shared_api.root / "store"
    url = f"file://{shared_api.datadir}/{image_id}"
    expected = [{"url": url, "metadata": {"id": "shared-fs-1", "mountpoint": str(store)}}]
    assert squash(shown["locations"]) == squash(json.dumps(expected))
    assert shown["direct_url"] == url

    code, out, err = glance(shared_api, glance_env, "image-list")
    assert code == 0, err
    assert re.search(rf"\| {image_id} \| fedora-test +\|", out), out

    target = tmp_path / "downloaded.qcow2"
    code, out, err = glance(shared_api, glance_env, "image-download", image_id, "--file",
                            str(target), "--progress", tty=True)
    assert code == 0, err + out
    assert target.read_bytes() == data  # glanceclient also checked os_hash_value itself

    code, out, err = glance(shared_api, glance_env, "image-update", image_id, "--name",
                            "fedora-renamed", "--property", "os_distro=fedora")
    assert code == 0, err
    updated = parse_table(out)
    assert updated["name"] == "fedora-renamed" and updated["os_distro"] == "fedora"

    code, out, err = glance(shared_api, glance_env, "image-tag-update", image_id, "gold")
    assert code == 0, err
    code, out, err = glance(shared_api, glance_env, "image-delete", image_id)
    assert code == 0, err
    code, out, err = glance(shared_api, glance_env, "image-show", image_id)
    assert code != 0
    assert image_id in err and "Traceback" not in err
    assert not Path(url[len("file://"):]).exists()


def test_glance_download_detects_corruption(shared_api, glance_env, qcow2_file, tmp_path):
    """glanceclient verifies os_hash_value itself: our download must give it the real data."""
    code, out, err = glance(shared_api, glance_env, "image-create", "--file", str(qcow2_file),
                            "--name", "victim", "--disk-format", "qcow2",
                            "--container-format", "bare")
    assert code == 0, err
    image_id = parse_table(out)["id"]
    stored = shared_api.datadir / image_id
    with open(stored, "r+b") as handle:
        handle.seek(1024 * 1024 + 10)
        handle.write(b"\x00\x01\x02")
    code, out, err = glance(shared_api, glance_env, "image-download", image_id, "--file",
                            str(tmp_path / "bad.qcow2"))
    assert code != 0
    assert "corrupt" in err.lower() or "checksum" in err.lower() or "hash" in err.lower(), err


def test_glanceclient_python_api(shared_api, tmp_path):
    # The version in the URL is the non-deprecated way to say Client("2", endpoint).
    client = glanceclient.Client(endpoint=f"{shared_api.url}/v2", token="x")
    data = os.urandom(2 * 1024 * 1024 + 1)
    two = uuid.uuid4().hex  # a tag no other test's image carries (shared server)
    image = client.images.create(name="py", disk_format="raw", container_format="bare",
                                 os_distro="debian", tags=["one"])
    assert image["status"] == "queued" and image["os_distro"] == "debian"
    path = tmp_path / "py.raw"
    path.write_bytes(data)
    with open(path, "rb") as handle:
        client.images.upload(image["id"], handle)  # chunked transfer, no Content-Length
    got = client.images.get(image["id"])
    assert got["status"] == "active" and got["size"] == len(data)
    assert got["os_hash_value"] == hashlib.sha512(data).hexdigest()
    assert b"".join(client.images.data(image["id"])) == data

    updated = client.images.update(image["id"], name="py2", remove_props=["os_distro"],
                                   hw_disk_bus="scsi")
    assert updated["name"] == "py2" and "os_distro" not in updated
    assert updated["hw_disk_bus"] == "scsi"
    client.image_tags.update(image["id"], two)
    client.image_tags.delete(image["id"], "one")
    assert client.images.get(image["id"])["tags"] == [two]

    for i in range(3):
        client.images.create(name=f"more{i}", tags=[two])
    names = sorted(i["name"] for i in client.images.list(page_size=2,
                                                         filters={"tag": [two]}))
    assert names == ["more0", "more1", "more2", "py2"]
    assert [i["id"] for i in client.images.list(filters={"name": "py2"})] == [image["id"]]

    client.images.deactivate(image["id"])
    assert client.images.get(image["id"])["status"] == "deactivated"
    client.images.reactivate(image["id"])
    client.images.delete(image["id"])
    with pytest.raises(glance_exc.HTTPNotFound):
        client.images.get(image["id"])
