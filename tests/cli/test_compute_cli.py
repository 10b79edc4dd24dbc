"""`chute boot/list/show/delete/flavor-list` against real chute-api + chute-compute.

Two agents in all (starting one costs seconds on a busy machine): one for the happy path, one
for failures.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit

from tests.helpers.cli import assert_one_line_error, run_on


def _image(stack, path: Path, disk_format: str = "qcow2") -> str:
    made = run_on(stack, "image-create", "--file", str(path), "--name", "guest",
                  "--disk-format", disk_format, "-f", "json")
    assert made.returncode == 0, made.stderr
    return made.json()["id"]


def test_flavors_boot_poll_show_list_delete(stack, qcow2_image):
    _api, compute = stack
    table = run_on(stack, "flavor-list")
    assert table.returncode == 0, table.stderr
    assert re.search(r"\| 2 +\| m1\.small +\| 2048 +\| 20 +\|", table.stdout), table.stdout
    flavors = {f["id"]: f for f in run_on(stack, "flavor-list", "-f", "json").json()}
    assert flavors["2"]["name"] == "m1.small" and flavors["2"]["vcpus"] == 1

    image_id = _image(stack, qcow2_image)
    booted = run_on(stack, "boot", "--image", image_id, "--flavor", "2", "--poll", "vm1")
    assert booted.returncode == 0, booted.stderr
    rows = booted.table()
    assert f"Server {rows['id']} ACTIVE" in booted.stderr  # the poll's status line
    assert rows["status"] == "ACTIVE" and rows["name"] == "vm1"
    assert rows["image"] == image_id and rows["flavor"] == "2"
    assert rows["OS-EXT-STS:power_state"] == "Running"
    assert "Successfully transferred using file" in compute.log_text()

    shown = run_on(stack, "show", rows["id"], "-f", "json").json()
    assert shown["status"] == "ACTIVE" and shown["OS-EXT-STS:vm_state"] == "active"
    assert shown["chute:image_transfer"]["method"] == "file"

    by_name = run_on(stack, "boot", "--image", image_id, "--flavor", "m1.tiny", "vm2",
                     "-f", "json")
    assert by_name.returncode == 0, by_name.stderr
    second = by_name.json()
    assert second["status"] in ("BUILD", "ACTIVE") and second["flavor"]["id"] == "1"

    listed = run_on(stack, "list")
    assert re.search(rf"\| {rows['id']} \| vm1 +\| ACTIVE +\| - +\| Running", listed.stdout), \
        listed.stdout
    ids = {s["id"] for s in run_on(stack, "list", "-f", "json").json()}
    assert ids == {rows["id"], second["id"]}

    deleted = run_on(stack, "delete", rows["id"], second["id"])
    assert deleted.returncode == 0, deleted.stderr
    assert_one_line_error(run_on(stack, "show", rows["id"]), rows["id"], "(HTTP 404)")


def test_boot_failures(stack, raw_image, qcow2_image):
    image_id = _image(stack, raw_image, disk_format="raw")
    doc = run_on(stack, "image-show", image_id, "-f", "json").json()
    stored = Path(urlsplit(doc["locations"][0]["url"]).path)
    with open(stored, "r+b") as handle:  # the store file rots after upload
        handle.seek(4096)
        handle.write(b"corrupt!")
    booted = run_on(stack, "boot", "--image", image_id, "--flavor", "2", "--poll", "bad")
    assert booted.returncode == 1 and "Traceback" not in booted.stderr
    last = booted.stderr.strip().splitlines()[-1]  # above it: the poll's status lines
    assert last.startswith("chute: error: server ") and "checksum" in last, booted.stderr
    rows = booted.table()
    assert rows["status"] == "ERROR" and "checksum" in rows["fault"]  # fault shown as its message

    good = _image(stack, qcow2_image)
    assert_one_line_error(run_on(stack, "boot", "--image", good, "--flavor", "99", "x"),
                          "no flavor with id or name '99'")
    assert_one_line_error(run_on(stack, "boot", "--flavor", "2", "x"), "--image")
    missing = run_on(stack, "boot", "--image", "00000000-0000-4000-8000-000000000000",
                     "--flavor", "2", "--poll", "ghost")
    assert missing.returncode == 1 and "Traceback" not in missing.stderr
    assert missing.stderr.strip().splitlines()[-1].startswith("chute: error: ")
    assert_one_line_error(run_on(stack, "delete", "no-such-server"), "no-such-server")
