"""One bit flipped in a stored image (first byte, last byte, a seeded byte in between).

Every fetch refuses it - the direct copy and the HTTP download - and the boot ends in ERROR
saying the data does not match its checksum. `GET .../file` still sends the stored bytes (the
image service does not read them back to serve them), so the clients must catch it: the glance
CLI and `chute image-download` both fail.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from tests.helpers.disks import write_random_file
from tests.helpers.faults import MiB, rng
from tests.helpers.images import upload_image
from tests.helpers.servers import base_dir, boot, wait_built

SIZE = 8 * MiB
BIN = Path(sys.executable).parent


@pytest.fixture
def corrupted(start_api, tmp_path):
    """An API with three active images, each with one bit flipped in its stored file."""
    api = start_api(DEFAULT={"workers": 1})
    source = write_random_file(tmp_path / "image.raw", SIZE, "corruption")
    gen = rng("corruption")
    images = []
    for where, offset in (("first", 0), ("last", SIZE - 1), ("seeded", gen.randrange(SIZE))):
        image = upload_image(api, source)
        stored = api.datadir / image["id"]
        with open(stored, "r+b") as handle:
            handle.seek(offset)
            byte = handle.read(1)[0]
            handle.seek(offset)
            handle.write(bytes([byte ^ (1 << gen.randrange(8))]))
        images.append((where, offset, image))
    return api, source, images


@pytest.mark.parametrize("path", ["direct", "http"])
def test_every_fetch_refuses_a_flipped_bit(start_compute, corrupted, path):
    api, _, images = corrupted
    overrides = {} if path == "direct" else {"glance": {"allowed_direct_url_schemes": ""}}
    compute = start_compute(api, **overrides)
    for where, _offset, image in images:
        done = wait_built(compute, boot(compute, image["id"], name=where)["id"])
        assert done["status"] == "ERROR", (where, done)
        assert "checksum" in done["fault"]["message"], (where, done["fault"])
    log = compute.log_text()
    if path == "direct":
        assert log.count("does not match the image") >= len(images), log[-3000:]
    assert "Successfully transferred" not in log
    assert sorted(n for n in os.listdir(base_dir(compute)) if not n.endswith(".lock")) == []
    print(f"\nRELIABILITY corruption: {len(images)} images with a flipped bit (first byte, last "
          f"byte, byte {images[2][1]}), {path} fetch: {len(images)} boots ERROR on the "
          "checksum, nothing cached")


@pytest.mark.parametrize("path", ["direct", "http"])
def test_every_fetch_refuses_a_byte_written_into_a_hole(start_api, start_compute, tmp_path,
                                                         path):
    """os_glance_blake3_blocks counts a whole zero block as a constant without hashing it: a byte
    that appears in what was a hole (here in the middle of a 4 MiB block of zeros) must still
    be seen, as data by SEEK_DATA on the direct path, as a non-zero chunk over HTTP."""
    api = start_api(DEFAULT={"workers": 1})
    source = tmp_path / "sparse.raw"
    with open(source, "wb") as handle:
        handle.write(os.urandom(MiB))
        handle.seek(10 * MiB)
        handle.write(os.urandom(MiB))
    image = upload_image(api, source)
    with open(api.datadir / image["id"], "r+b") as handle:
        handle.seek(6 * MiB + 12345)
        handle.write(b"\x01")
    overrides = {} if path == "direct" else {"glance": {"allowed_direct_url_schemes": ""}}
    compute = start_compute(api, **overrides)
    done = wait_built(compute, boot(compute, image["id"])["id"])
    assert done["status"] == "ERROR" and "checksum" in done["fault"]["message"], done
    assert "Successfully transferred" not in compute.log_text()
    assert sorted(n for n in os.listdir(base_dir(compute)) if not n.endswith(".lock")) == []


def test_download_sends_the_stored_bytes_and_clients_detect_the_mismatch(corrupted, tmp_path):
    api, source, images = corrupted
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
    env["HOME"] = str(home)
    glance_whole = 0
    for where, _, image in images:
        stored = (api.datadir / image["id"]).read_bytes()
        resp = requests.get(f"{api.url}/v2/images/{image['id']}/file", timeout=30)
        assert resp.status_code == 200
        assert resp.content == stored, "the service must send what it stores"
        assert resp.headers["Content-MD5"] == image["checksum"]
        assert hashlib.md5(resp.content).hexdigest() != image["checksum"]

        out = tmp_path / f"glance-{where}.raw"
        glance = subprocess.run(
            [str(BIN / "glance"), "--os-image-url", api.url, "--os-auth-token", "x",
             "image-download", image["id"], "--file", str(out)],
            check=False, capture_output=True, text=True, env=env, timeout=120,
            stdin=subprocess.DEVNULL)
        assert glance.returncode != 0, glance.stdout
        assert "Corrupt image download" in glance.stderr, glance.stderr
        # glanceclient writes each chunk before it hashes it: the file it leaves is whole-sized
        # but holds the corrupted bytes, never the image's.
        if out.exists():
            assert out.read_bytes() != source.read_bytes()
            glance_whole += out.stat().st_size == SIZE

        out_dir = tmp_path / f"chute-{where}"
        out_dir.mkdir()
        chute = subprocess.run(
            [str(BIN / "chute"), "image-download", image["id"], "--file",
             str(out_dir / "copy.raw")],
            check=False, capture_output=True, text=True, env={**env, "OS_IMAGE_URL": api.url},
            timeout=120)
        assert chute.returncode != 0, chute.stdout
        assert "Traceback" not in chute.stderr
        assert list(out_dir.iterdir()) == [], "chute image-download left a file"
    print(f"\nRELIABILITY corruption: GET .../file sent the stored bytes of {len(images)} "
          f"flipped images; glance image-download failed {len(images)}/{len(images)} (it left "
          f"{glance_whole} whole-sized file(s) of corrupted bytes: glanceclient writes before "
          f"it verifies), chute image-download failed {len(images)}/{len(images)} leaving "
          "nothing")
