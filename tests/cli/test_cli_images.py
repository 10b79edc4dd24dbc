"""`chute image-*` against a real chute-api: the user's flows, tables, JSON, progress bars."""

from __future__ import annotations

import os
import re
import uuid
from pathlib import Path
from urllib.parse import urlsplit

from tests.helpers.cli import assert_one_line_error, run_chute
from tests.helpers.digests import digests

RATE = re.compile(r"\d+(\.\d+)?\s?[kMG]?i?B/s")


def _create(api_url: str, path: Path, *extra: str, disk_format: str = "raw") -> dict:
    result = run_chute("image-create", "--file", str(path), "--name", path.name,
                       "--disk-format", disk_format, "--container-format", "bare",
                       "-f", "json", *extra, image_url=api_url)
    assert result.returncode == 0, result.stderr
    return result.json()


def test_create_with_progress_shows_glance_style_table(shared_api, qcow2_image):
    result = run_chute("--os-image-url", shared_api.url, "--os-auth-token", "x",
                       "image-create", "--file", str(qcow2_image), "--name", "fedora-test",
                       "--disk-format", "qcow2", "--container-format", "bare",
                       "--property", "os_distro=fedora", "--progress")
    assert result.returncode == 0, result.stderr
    # tqdm draws on stderr: size done, rate and the elapsed<remaining (ETA) pair.
    assert "upload" in result.stderr and "100%" in result.stderr
    assert RATE.search(result.stderr), result.stderr
    assert re.search(r"\d\d:\d\d<\d\d:\d\d", result.stderr), result.stderr
    lines = result.stdout.splitlines()
    assert re.fullmatch(r"\+-+\+-+\+", lines[0])
    assert re.fullmatch(r"\| Property +\| Value +\|", lines[1])
    rows = result.table()
    expected = digests(qcow2_image)
    md5, sha512 = expected["checksum"], expected["os_hash_value"]
    assert rows["status"] == "active"
    assert rows["checksum"] == md5
    assert rows["os_hash_value"] == sha512  # wrapped over two lines at 80 columns
    assert rows["disk_format"] == "qcow2" and rows["os_distro"] == "fedora"
    assert rows["virtual_size"] == str(16 * 1024 * 1024)
    assert "self" not in rows and "schema" not in rows and "file" not in rows
    props = [line.split("|")[1].strip() for line in lines[3:-1] if line.split("|")[1].strip()]
    assert props == sorted(props)
    assert all(len(line) == len(lines[0]) for line in lines)


def test_show_reveals_file_location_with_metadata(shared_api, raw_image):
    image = _create(shared_api.url, raw_image)
    shown = run_chute("image-show", image["id"], "-f", "json", image_url=shared_api.url).json()
    [location] = shown["locations"]
    assert location["metadata"] == {"id": "shared-fs-1",
                                    "mountpoint": str(shared_api.root / "store")}
    path = Path(urlsplit(location["url"]).path)
    assert path.read_bytes() == raw_image.read_bytes()
    assert shown["direct_url"] == location["url"]
    table = run_chute("image-show", image["id"], image_url=shared_api.url).table()
    assert re.sub(r"\s", "", table["locations"]) == re.sub(r"\s", "", f'[{{"url": '
                                                           f'"{location["url"]}", "metadata": '
                                                           f'{{"id": "shared-fs-1", "mountpoint":'
                                                           f' "{shared_api.root / "store"}"}}}}]')


def test_list_download_roundtrip(shared_api, raw_image, tmp_path):
    image = _create(shared_api.url, raw_image)
    listed = run_chute("image-list", "-f", "json", image_url=shared_api.url)
    assert image["id"] in [i["id"] for i in listed.json()]
    table = run_chute("image-list", image_url=shared_api.url)
    assert re.search(rf"\| {image['id']} \| disk.raw +\| active +\|", table.stdout)

    out = tmp_path / "out" / "copy.raw"
    out.parent.mkdir()
    result = run_chute("image-download", image["id"], "--file", str(out), "--progress",
                       image_url=shared_api.url)
    assert result.returncode == 0, result.stderr
    assert out.read_bytes() == raw_image.read_bytes()
    assert RATE.search(result.stderr) and "download" in result.stderr
    assert sorted(p.name for p in out.parent.iterdir()) == ["copy.raw"]  # no .part left
    again = run_chute("image-download", image["id"], "--file", str(out), "-f", "json",
                      image_url=shared_api.url)
    assert again.json() == {"id": image["id"], "file": str(out),
                            "bytes": raw_image.stat().st_size, "verified": "blake3-blocks"}


def test_list_follows_pages_and_filters(shared_api):
    tag = uuid.uuid4().hex
    ids = {run_chute("image-create", "--name", f"n{i}", "--tag", tag, "-f", "json",
                     image_url=shared_api.url).json()["id"] for i in range(5)}
    listed = run_chute("image-list", "--limit", "2", "--tag", tag, "-f", "json",
                       image_url=shared_api.url)
    assert {i["id"] for i in listed.json()} == ids
    one = run_chute("image-list", "--tag", tag, "--property-filter", "name=n3", "-f", "json",
                    image_url=shared_api.url)
    assert [i["name"] for i in one.json()] == ["n3"]


def test_update_properties_and_name(shared_api, raw_image):
    image = _create(shared_api.url, raw_image, "--property", "os_distro=fedora")
    updated = run_chute("image-update", image["id"], "--name", "renamed", "--property",
                        "hw_disk_bus=scsi", "--remove-property", "os_distro", "--min-ram", "512",
                        "-f", "json", image_url=shared_api.url)
    assert updated.returncode == 0, updated.stderr
    doc = updated.json()
    assert doc["name"] == "renamed" and doc["hw_disk_bus"] == "scsi" and doc["min_ram"] == 512
    assert "os_distro" not in doc
    again = run_chute("image-show", image["id"], "-f", "json", image_url=shared_api.url).json()
    assert again["name"] == "renamed" and "os_distro" not in again

    missing = run_chute("image-update", image["id"], "--remove-property", "nope",
                        image_url=shared_api.url)
    assert_one_line_error(missing, "(HTTP 409)")


def test_tags_and_deactivation(shared_api, raw_image, tmp_path):
    image = _create(shared_api.url, raw_image)
    tagged = run_chute("image-tag-update", image["id"], "gold", "-f", "json",
                       image_url=shared_api.url)
    assert tagged.json()["tags"] == ["gold"]
    untagged = run_chute("image-tag-delete", image["id"], "gold", "-f", "json",
                         image_url=shared_api.url)
    assert untagged.json()["tags"] == []
    assert_one_line_error(run_chute("image-tag-delete", image["id"], "gold",
                                    image_url=shared_api.url), "(HTTP 404)")

    off = run_chute("image-deactivate", image["id"], "-f", "json", image_url=shared_api.url)
    assert off.json()["status"] == "deactivated"
    out = tmp_path / "blocked.raw"
    blocked = run_chute("image-download", image["id"], "--file", str(out),
                        image_url=shared_api.url)
    assert_one_line_error(blocked, "deactivated")
    assert not out.exists()
    on = run_chute("image-reactivate", image["id"], "-f", "json", image_url=shared_api.url)
    assert on.json()["status"] == "active"


def test_delete_then_show_is_one_line_404(shared_api, raw_image):
    image = _create(shared_api.url, raw_image)
    other = _create(shared_api.url, raw_image)
    deleted = run_chute("image-delete", image["id"], other["id"], image_url=shared_api.url)
    assert deleted.returncode == 0, deleted.stderr
    assert deleted.stdout == ""
    shown = run_chute("image-show", image["id"], image_url=shared_api.url)
    assert_one_line_error(shown, image["id"], "(HTTP 404)")
    assert shown.stdout == ""
    listed = run_chute("image-list", "-f", "json", image_url=shared_api.url).json()
    assert not {image["id"], other["id"]} & {i["id"] for i in listed}
    # Every id is tried; the command fails when one of them failed.
    third = _create(shared_api.url, raw_image)
    partly = run_chute("image-delete", "no-such-image", third["id"], "-f", "json",
                       image_url=shared_api.url)
    assert_one_line_error(partly, "no-such-image")
    assert partly.json() == {"deleted": [third["id"]]}


def test_create_without_data_stays_queued(shared_api):
    made = run_chute("image-create", "--name", "empty", "--disk-format", "raw",
                     "--container-format", "bare", "--tag", "a", "--tag", "b", "-f", "json",
                     image_url=shared_api.url)
    doc = made.json()
    assert doc["status"] == "queued" and sorted(doc["tags"]) == ["a", "b"]


def test_progress_of_a_many_chunk_upload_reaches_the_total(shared_api, tmp_path):
    path = tmp_path / "forty.raw"
    path.write_bytes(os.urandom(40 * 1024 * 1024 + 7))  # many send chunks, not a multiple of one
    result = run_chute("image-create", "--file", str(path), "--name", "forty", "--disk-format",
                       "raw", "--progress", "-f", "json", image_url=shared_api.url)
    assert result.returncode == 0, result.stderr
    assert re.search(r"100%.*40\.0M/40\.0M", result.stderr), result.stderr
    image = result.json()
    assert image["status"] == "active" and image["size"] == path.stat().st_size
    assert image["checksum"] == digests(path)["checksum"]
