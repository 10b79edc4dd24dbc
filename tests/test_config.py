"""chute-api configuration: bad values stop the service at start with one clear line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

CHUTE_API = str(Path(sys.executable).parent / "chute-api")


def run(conf_text: str, tmp_path: Path, *extra: str) -> subprocess.CompletedProcess:
    conf = tmp_path / "chute-api.conf"
    conf.write_text(conf_text)
    return subprocess.run([CHUTE_API, "--config-file", str(conf), *extra], capture_output=True,
                          text=True, timeout=30)


@pytest.mark.parametrize("text,section,option,problem", [
    ("[DEFAULT]\nworkers = many\n", "DEFAULT", "workers", "not an integer"),
    ("[DEFAULT]\nshow_multiple_locations = perhaps\n", "DEFAULT", "show_multiple_locations",
     "not a boolean"),
    ("[DEFAULT]\nhashing_algorithm = sha999\n", "DEFAULT", "hashing_algorithm", "sha999"),
    ("[DEFAULT]\nuser_storage_quota = lots\n", "DEFAULT", "user_storage_quota", "not a size"),
    ("[DEFAULT]\nbogus = 1\n", "DEFAULT", "bogus", "unknown option"),
    ("[glance_store]\nfilesystem_store_file_perm = 200\n", "glance_store",
     "filesystem_store_file_perm", "owner read"),
    ("[glance_store]\nfilesystem_store_datadir = /x\nfilesystem_store_datadirs = /y:1\n",
     "glance_store", "filesystem_store_datadirs", "together"),
    ("[glance_store]\nfilesystem_store_metadata_file = {tmp}/missing.json\n", "glance_store",
     "filesystem_store_metadata_file", "cannot read"),
    ("[database]\nconnection = nosuchdb://x\n", "database", "connection", "cannot open"),
])
def test_bad_config_names_file_section_option(tmp_path, text, section, option, problem):
    body = text.replace("{tmp}", str(tmp_path))
    datadir = f"filesystem_store_datadir = {tmp_path}/images\n"
    if "[glance_store]" not in body:
        body += "[glance_store]\n" + datadir
    elif "filesystem_store_datadir" not in body:
        body = body.replace("[glance_store]\n", "[glance_store]\n" + datadir, 1)
    result = run(body, tmp_path)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert str(tmp_path / "chute-api.conf") in lines[0]
    assert f"[{section}] {option}" in lines[0] and problem in lines[0]
    assert "Traceback" not in result.stderr


def test_show_config_prints_effective_values(tmp_path):
    result = run("[DEFAULT]\nworkers = 3\n", tmp_path, "--show-config")
    assert result.returncode == 0
    assert "workers = 3" in result.stdout
    assert "filesystem_store_datadir = /var/lib/chute/images" in result.stdout
    assert "# Number of server processes." in result.stdout


def test_every_option_is_documented():
    from chute.images.options import SCHEMA

    for section, opts in SCHEMA.items():
        for opt in opts:
            assert opt.help.strip(), (section, opt.name)
