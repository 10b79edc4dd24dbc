"""Failures of `chute`: one line on stderr, exit status 1, never a traceback, no stray files."""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.helpers.cli import assert_one_line_error, run_chute
from tests.helpers.services import free_port


def _stored_path(api_url: str, image_id: str) -> Path:
    doc = run_chute("image-show", image_id, "-f", "json", image_url=api_url).json()
    return Path(urlsplit(doc["locations"][0]["url"]).path)


def _upload(api_url: str, path: Path) -> str:
    made = run_chute("image-create", "--file", str(path), "--name", "victim", "--disk-format",
                     "raw", "-f", "json", image_url=api_url)
    assert made.returncode == 0, made.stderr
    return made.json()["id"]


def test_unknown_image(shared_api):
    result = run_chute("image-show", "3f1c5b36-0000-4000-8000-000000000000",
                       image_url=shared_api.url)
    assert_one_line_error(result, "No image found", "(HTTP 404)")


@pytest.mark.parametrize("command", [["image-list"], ["image-show", "x"], ["list"],
                                     ["flavor-list"]])
def test_unreachable_endpoint(command):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    result = run_chute("--os-image-url", url, "--os-compute-url", url, *command)
    assert_one_line_error(result, f"cannot reach {url}", "Connection refused")


def test_usage_errors_are_one_line_too(shared_api, raw_image):
    assert_one_line_error(run_chute("image-show", image_url=shared_api.url), "IMAGE_ID")
    assert_one_line_error(run_chute("no-such-command"), "no-such-command")
    assert_one_line_error(run_chute("image-create", "--file", str(raw_image),
                                    image_url=shared_api.url), "--disk-format")
    assert_one_line_error(run_chute("image-update", "x", "--property", "novalue",
                                    image_url=shared_api.url), "KEY=VALUE")
    assert_one_line_error(run_chute("-f", "yaml", "image-list"), "yaml")


def _named(api_url: str, name: str) -> list[dict]:
    return run_chute("image-list", "--property-filter", f"name={name}", "-f", "json",
                     image_url=api_url).json()


def test_missing_file_creates_no_image(shared_api, tmp_path):
    name = uuid.uuid4().hex
    result = run_chute("image-create", "--file", str(tmp_path / "absent.raw"), "--name", name,
                       "--disk-format", "raw", image_url=shared_api.url)
    assert_one_line_error(result, "absent.raw", "No such file")
    assert _named(shared_api.url, name) == []


def test_rejected_upload_says_so_in_one_line(shared_api, raw_image):
    name = uuid.uuid4().hex
    result = run_chute("image-create", "--file", str(raw_image), "--name", name,
                       "--disk-format", "qcow2", image_url=shared_api.url)
    assert_one_line_error(result, "upload failed", "retry with image-upload", "(HTTP 415)")
    [image] = _named(shared_api.url, name)
    assert image["status"] == "queued"
    # The user fixes the format and uploads again to the same image.
    fixed = run_chute("image-update", image["id"], "--disk-format", "raw",
                      image_url=shared_api.url)
    assert fixed.returncode == 0, fixed.stderr
    uploaded = run_chute("image-upload", image["id"], "--file", str(raw_image), "-f", "json",
                         image_url=shared_api.url)
    assert uploaded.returncode == 0, uploaded.stderr
    assert uploaded.json()["status"] == "active"


def test_download_of_corrupted_store_file_fails_and_leaves_nothing(shared_api, raw_image,
                                                                   tmp_path):
    image_id = _upload(shared_api.url, raw_image)
    stored = _stored_path(shared_api.url, image_id)
    with open(stored, "r+b") as handle:  # same size, one byte flipped in the middle
        handle.seek(1024 * 1024)
        byte = handle.read(1)
        handle.seek(1024 * 1024)
        handle.write(bytes([byte[0] ^ 0xFF]))
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    result = run_chute("image-download", image_id, "--file", str(out_dir / "copy.raw"),
                       image_url=shared_api.url)
    assert_one_line_error(result, "does not match its os_glance_blake3_blocks",
                          "download discarded")
    assert list(out_dir.iterdir()) == []


def test_download_of_truncated_store_file_fails_and_leaves_nothing(shared_api, raw_image,
                                                                   tmp_path):
    image_id = _upload(shared_api.url, raw_image)
    stored = _stored_path(shared_api.url, image_id)
    os.truncate(stored, 1024 * 1024)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    result = run_chute("image-download", image_id, "--file", str(out_dir / "copy.raw"),
                       image_url=shared_api.url)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert list(out_dir.iterdir()) == []


def test_download_over_existing_file_keeps_it_on_failure(shared_api, raw_image, tmp_path):
    image_id = _upload(shared_api.url, raw_image)
    stored = _stored_path(shared_api.url, image_id)
    with open(stored, "r+b") as handle:
        handle.write(b"\0" * 16)
    target = tmp_path / "existing.raw"
    target.write_bytes(b"previous content")
    result = run_chute("image-download", image_id, "--file", str(target),
                       image_url=shared_api.url)
    assert_one_line_error(result, "does not match")
    assert target.read_bytes() == b"previous content"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_download_into_missing_directory(shared_api, raw_image, tmp_path):
    image_id = _upload(shared_api.url, raw_image)
    result = run_chute("image-download", image_id, "--file", str(tmp_path / "no" / "x.raw"),
                       image_url=shared_api.url)
    assert_one_line_error(result, f"cannot write in {tmp_path / 'no'}")


def test_server_side_validation_error_is_one_line(shared_api):
    result = run_chute("image-create", "--name", "bad", "--disk-format", "floppy",
                       image_url=shared_api.url)
    assert_one_line_error(result, "floppy", "(HTTP 400)")


def test_server_hanging_up_mid_upload_is_one_line(hangup_server, tmp_path):
    path = tmp_path / "big.raw"
    path.write_bytes(os.urandom(8 * 1024 * 1024))  # more than the 1 MiB the peer reads
    result = run_chute("image-upload", "0" * 32, "--file", str(path), image_url=hangup_server)
    assert_one_line_error(result, f"{hangup_server} broke off the request")
