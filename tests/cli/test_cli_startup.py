"""What `chute` imports to move image data: every module a run imports is CPU taken from the
transfer (and, on a small machine, from the server hashing it), so the data commands by id
leave out the libraries only other commands need."""

from __future__ import annotations

from pathlib import Path

from tests.helpers.cli import run_chute
from tests.helpers.importtime import PROFILE_IMPORTS, imported_packages

# requests/urllib3: metadata calls of other commands; tqdm: --progress; prettytable: tables;
# keystoneauth1/yaml: password login. Together ~45% of the CLI's import time.
NOT_FOR_DATA = ("requests", "urllib3", "tqdm", "prettytable", "keystoneauth1", "yaml")


def test_upload_and_download_by_id_import_no_library_they_do_not_use(shared_api,
                                                                      tmp_path: Path):
    data = tmp_path / "disk.raw"
    data.write_bytes(b"\x5a" * (3 << 20))
    created = run_chute("image-create", "--file", str(data), "--disk-format", "raw",
                        "--name", "startup", "-f", "json", image_url=shared_api.url,
                        env=PROFILE_IMPORTS)
    assert created.returncode == 0, created.stderr
    out = tmp_path / "back.raw"
    got = run_chute("image-download", created.json()["id"], "--file", str(out),
                    image_url=shared_api.url, env=PROFILE_IMPORTS)
    assert got.returncode == 0, got.stderr
    assert out.read_bytes() == data.read_bytes()
    for run in (created, got):
        imported = imported_packages(run.stderr)
        assert {"click", "chute"} <= imported  # the profile was read
        assert not imported & set(NOT_FOR_DATA), sorted(imported & set(NOT_FOR_DATA))
