"""Glance's multi-store layout in chute-api's config: each combination that cannot work stops
chute-api at start with one line naming the option (run in-process through its `main`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from chute.images.main import main

TWO_STORES = """[DEFAULT]
enabled_backends = rack1:file, rack2:file
[glance_store]
filesystem_store_datadir =
default_backend = rack1
[rack1]
filesystem_store_datadir = {tmp}/rack1
[rack2]
filesystem_store_datadir = {tmp}/rack2
"""


def start(text: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    conf = tmp_path / "chute-api.conf"
    conf.write_text(text.replace("{tmp}", str(tmp_path)))
    conf.chmod(0o600)
    code = main(["--config-file", str(conf)])
    return code, capsys.readouterr().err


@pytest.mark.parametrize(("change", "where", "problem"), [
    (("rack1:file, rack2:file", "rack1:file, rack2:rbd"), "[DEFAULT] enabled_backends",
     "has type 'rbd'; chute has file"),
    (("rack1:file, rack2:file", "rack1:file, rack1:file"), "[DEFAULT] enabled_backends",
     "'rack1' is listed twice"),
    (("rack1:file, rack2:file", "rack1:file, os_glance_x:file"), "[DEFAULT] enabled_backends",
     "reserved"),
    (("default_backend = rack1", "default_backend ="), "[glance_store] default_backend",
     "must be set when [DEFAULT] enabled_backends is"),
    (("default_backend = rack1", "default_backend = rack3"), "[glance_store] default_backend",
     "'rack3' is not in [DEFAULT] enabled_backends"),
    (("[rack2]\nfilesystem_store_datadir = {tmp}/rack2\n", ""), "[DEFAULT] enabled_backends",
     "store 'rack2' has no [rack2] section"),
    (("[rack2]", "[rack3]"), "[rack3]", "unknown section"),
    (("rack1:file, rack2:file", "rack1:file"), "[rack2]", "unknown section"),
    (("{tmp}/rack2", "{tmp}/rack1"), "[rack2] filesystem_store_datadir",
     "is already the datadir of store 'rack1'"),
    (("filesystem_store_datadir =\n", "filesystem_store_datadir = /srv/one\n"),
     "[glance_store] filesystem_store_datadir", "applies to the single store"),
    (("[rack2]\n", "[rack2]\nfilesystem_store_metadata_file = {tmp}/none.json\n"),
     "[rack2] filesystem_store_metadata_file", "cannot read"),
])
def test_a_store_layout_that_cannot_work_stops_chute_api(tmp_path, capsys, change, where,
                                                          problem):
    code, err = start(TWO_STORES.replace(*change, 1), tmp_path, capsys)
    assert code == 1
    [line] = err.strip().splitlines()
    assert where in line and problem in line, line


def test_copy_image_needs_several_stores(tmp_path, capsys):
    code, err = start(f"[DEFAULT]\nenabled_import_methods = glance-direct, copy-image\n"
                      f"[glance_store]\nfilesystem_store_datadir = {tmp_path}/images\n",
                      tmp_path, capsys)
    assert code == 1
    assert "[DEFAULT] enabled_import_methods" in err and "needs [DEFAULT] enabled_backends" in err


def test_a_default_backend_without_stores_is_refused(tmp_path, capsys):
    code, err = start(f"[glance_store]\nfilesystem_store_datadir = {tmp_path}/images\n"
                      "default_backend = rack1\n", tmp_path, capsys)
    assert code == 1
    assert "[glance_store] default_backend" in err and "enabled_backends is empty" in err
