"""`chute boot` with a key, user data, metadata, a zone; `chute keypair-add/list/delete`;
against real chute-api + chute-compute, the config drive read back with pycdlib."""

from __future__ import annotations

import io
import json

import pycdlib

from tests.helpers.cli import assert_one_line_error, run_on
from tests.helpers.images import upload_image


def _meta_data(drive) -> dict:
    iso = pycdlib.PyCdlib()
    iso.open(str(drive))
    out = io.BytesIO()
    iso.get_file_from_iso_fp(out, rr_path="/openstack/latest/meta_data.json")
    iso.close()
    return json.loads(out.getvalue())


def test_keypairs_and_boot_options(stack, tmp_path):
    api, compute = stack
    generated = run_on(stack, "keypair-add", "gen")
    assert generated.returncode == 0, generated.stderr
    assert generated.stdout.startswith("-----BEGIN RSA PRIVATE KEY-----")
    public = run_on(stack, "keypair-add", "gen2", "-f", "json").json()["public_key"]
    (tmp_path / "id.pub").write_text(public)
    imported = run_on(stack, "keypair-add", "--pub-key", str(tmp_path / "id.pub"), "mine",
                      "-f", "json")
    assert imported.returncode == 0, imported.stderr
    names = [k["name"] for k in run_on(stack, "keypair-list", "-f", "json").json()]
    assert names == ["gen", "gen2", "mine"]
    assert run_on(stack, "keypair-delete", "gen", "gen2").returncode == 0

    image = upload_image(api, b"\0" * 65536)["id"]
    (tmp_path / "ud").write_bytes(b"#cloud-config\n")
    booted = run_on(stack, "boot", "--image", image, "--flavor", "1", "--poll", "--key-name",
                    "mine", "--user-data", str(tmp_path / "ud"), "--meta", "role=db",
                    "--meta", "tier=2", "--availability-zone", "nova", "vm", "-f", "json")
    assert booted.returncode == 0, booted.stderr
    server = booted.json()
    assert server["key_name"] == "mine" and server["metadata"] == {"role": "db", "tier": "2"}
    meta = _meta_data(compute.instances_path / server["id"] / "disk.config")
    assert meta["public_keys"] == {"mine": public.strip()}
    assert meta["meta"] == {"role": "db", "tier": "2"}

    assert_one_line_error(run_on(stack, "boot", "--image", image, "--flavor", "1",
                                 "--key-name", "nobody", "vm2"), "Invalid key_name provided.")
    assert_one_line_error(run_on(stack, "boot", "--image", image, "--flavor", "1",
                                 "--availability-zone", "mars", "vm2"),
                          "availability zone is not available")
