"""`chute image-download` to stdout and with the umask's mode, and names where ids go
(issue 18 item 10), against real services."""

from __future__ import annotations

import os
import stat
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.helpers.cli import (
    assert_one_line_error,
    assert_one_line_failure,
    run_chute,
    run_chute_raw,
    run_on,
)

NOT_TO_A_TERMINAL = ("No redirection or local file specified for downloaded image data. "
                     "Please specify a local file with --file to save downloaded image or "
                     "redirect output to another source.")


def _image(api_url: str, path: Path, name: str, disk_format: str = "raw") -> str:
    made = run_chute("image-create", "--file", str(path), "--name", name, "--disk-format",
                     disk_format, "-f", "json", image_url=api_url)
    assert made.returncode == 0, made.stderr
    return str(made.json()["id"])


@pytest.mark.parametrize("file_args", [[], ["--file", "-"]])
def test_download_without_file_writes_the_image_to_stdout(shared_api, raw_image, file_args):
    image_id = _image(shared_api.url, raw_image, "to-stdout")
    result = run_chute_raw("image-download", image_id, *file_args, image_url=shared_api.url)
    assert result.returncode == 0, result.stderr
    assert result.stdout == raw_image.read_bytes()
    assert result.stderr == ""


def test_download_to_stdout_of_corrupted_data_fails_in_one_line(shared_api, raw_image):
    image_id = _image(shared_api.url, raw_image, "corrupt-stdout")
    doc = run_chute("image-show", image_id, "-f", "json", image_url=shared_api.url).json()
    stored = Path(urlsplit(doc["locations"][0]["url"]).path)
    with open(stored, "r+b") as handle:
        handle.seek(2 * 1024 * 1024)
        handle.write(b"\xff" * 8)
    result = run_chute_raw("image-download", image_id, image_url=shared_api.url)
    assert_one_line_failure(result.returncode, result.stderr, "does not match",
                            "already written to stdout are not the image")


def test_download_refuses_to_write_binary_to_a_terminal(shared_api, raw_image):
    image_id = _image(shared_api.url, raw_image, "to-tty")
    leader, follower = os.openpty()
    try:
        result = run_chute_raw("image-download", image_id, image_url=shared_api.url,
                               stdout=follower)
    finally:
        os.close(follower)
        os.close(leader)
    assert_one_line_failure(result.returncode, result.stderr, NOT_TO_A_TERMINAL)


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o027, 0o640), (0o002, 0o664)])
def test_downloaded_file_gets_the_umask_mode(shared_api, raw_image, tmp_path, umask, mode):
    image_id = _image(shared_api.url, raw_image, "mode")
    out = tmp_path / "copy.raw"
    result = run_chute_raw("image-download", image_id, "--file", str(out), umask=umask,
                           image_url=shared_api.url)
    assert result.returncode == 0, result.stderr
    assert stat.S_IMODE(out.stat().st_mode) == mode
    assert out.read_bytes() == raw_image.read_bytes()


def test_images_by_name(shared_api, raw_image, tmp_path):
    name = f"named-{uuid.uuid4().hex}"
    image_id = _image(shared_api.url, raw_image, name)
    shown = run_chute("image-show", name, "-f", "json", image_url=shared_api.url)
    assert shown.returncode == 0, shown.stderr
    assert shown.json()["id"] == image_id
    out = tmp_path / "by-name.raw"
    got = run_chute("image-download", name, "--file", str(out), image_url=shared_api.url)
    assert got.returncode == 0, got.stderr
    assert out.read_bytes() == raw_image.read_bytes()

    missing = f"missing-{uuid.uuid4().hex}"
    assert_one_line_error(run_chute("image-show", missing, image_url=shared_api.url),
                          f"No image with a name or ID of '{missing}' exists.")

    other = _image(shared_api.url, raw_image, name)
    twice = run_chute("image-show", name, image_url=shared_api.url)
    assert_one_line_error(twice, f"Multiple image matches found for '{name}'", image_id, other)


def test_boot_show_delete_by_name(stack, qcow2_image):
    api, _compute = stack
    image_name = f"guest-{uuid.uuid4().hex}"
    image_id = _image(api.url, qcow2_image, image_name, "qcow2")
    booted = run_on(stack, "boot", "--image", image_name, "--flavor", "1", "--poll", "vm-a",
                    "-f", "json")
    assert booted.returncode == 0, booted.stderr
    server = booted.json()
    assert server["image"]["id"] == image_id

    shown = run_on(stack, "show", "vm-a", "-f", "json")
    assert shown.returncode == 0, shown.stderr
    assert shown.json()["id"] == server["id"]
    assert_one_line_error(run_on(stack, "show", "vm-none"),
                          "No server with a name or ID of 'vm-none' exists.")

    second = run_on(stack, "boot", "--image", image_id, "--flavor", "1", "vm-a", "-f", "json")
    assert second.returncode == 0, second.stderr
    twice = run_on(stack, "show", "vm-a")
    assert_one_line_error(twice, "Multiple server matches found for 'vm-a'", server["id"],
                          second.json()["id"])
    assert_one_line_error(run_on(stack, "delete", "vm-a"), "Multiple server matches")

    assert run_on(stack, "delete", server["id"]).returncode == 0
    deleted = run_on(stack, "delete", "vm-a")
    assert deleted.returncode == 0, deleted.stderr
    assert run_on(stack, "list", "-f", "json").json() == []
