"""chute-api configuration: bad values stop the service at start with one clear line."""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

CHUTE_API = str(Path(sys.executable).parent / "chute-api")


def run(conf_text: str, tmp_path: Path, *extra: str) -> subprocess.CompletedProcess:
    conf = tmp_path / "chute-api.conf"
    conf.write_text(conf_text)
    return subprocess.run([CHUTE_API, "--config-file", str(conf), *extra], capture_output=True,
                          text=True, timeout=60)


def run_main(conf_text: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
             monkeypatch: pytest.MonkeyPatch) -> tuple[int, str]:
    """chute-api's main() in this process (a subprocess per case costs seconds of imports)."""
    import chute.wsgi_server
    from chute.images.main import main

    def must_not_serve(*args: object, **kwargs: object) -> None:
        raise AssertionError("a bad configuration reached the server")

    monkeypatch.setattr(chute.wsgi_server, "serve", must_not_serve)
    conf = tmp_path / "chute-api.conf"
    conf.write_text(conf_text)
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    umask = os.umask(0o022)
    os.umask(umask)
    try:
        code = main(["--config-file", str(conf)])
    finally:  # main() set up chute's logging and tightened the umask; give pytest its own back
        root.handlers[:] = handlers
        root.setLevel(level)
        os.umask(umask)
    return code, capsys.readouterr().err


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
def test_bad_config_names_file_section_option(tmp_path, capsys, monkeypatch, text, section,
                                              option, problem):
    body = text.replace("{tmp}", str(tmp_path))
    datadir = f"filesystem_store_datadir = {tmp_path}/images\n"
    if "[glance_store]" not in body:
        body += "[glance_store]\n" + datadir
    elif "filesystem_store_datadir" not in body:
        body = body.replace("[glance_store]\n", "[glance_store]\n" + datadir, 1)
    code, err = run_main(body, tmp_path, capsys, monkeypatch)
    assert code == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert str(tmp_path / "chute-api.conf") in lines[0]
    assert f"[{section}] {option}" in lines[0] and problem in lines[0]


def test_the_real_command_exits_1_with_one_line(tmp_path):
    result = run("[DEFAULT]\nbind_port = -5\n", tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"chute-api: {tmp_path / 'chute-api.conf'}: [DEFAULT] bind_port: -5 is below the "
        "minimum 0"]


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


@pytest.mark.parametrize("mode, problem", [(0o644, "readable by others (mode 0644)"),
                                           (0o602, "writable by others (mode 0602)")])
def test_a_service_token_in_a_file_others_can_access_stops_the_service(tmp_path, mode, problem):
    conf = tmp_path / "chute-api.conf"
    conf.write_text(f"[DEFAULT]\nservice_token = s3cret\n[glance_store]\n"
                    f"filesystem_store_datadir = {tmp_path}/images\n")
    conf.chmod(mode)
    result = subprocess.run([CHUTE_API, "--config-file", str(conf)], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"chute-api: {conf}: [DEFAULT] service_token: is a secret, but the file is {problem}; "
        f"chmod 600 {conf}"]
    assert not (tmp_path / "images").exists()  # refused before anything was created


def test_check_private_accepts_a_private_secret_and_a_public_file_without_one(tmp_path):
    from chute import config
    from chute.images.options import SCHEMA

    secret = tmp_path / "secret.conf"
    secret.write_text("[DEFAULT]\nservice_token = s3cret\n")
    secret.chmod(0o640)  # the group may read it: only "others" are refused
    config.check_private(config.load(secret, SCHEMA), [("DEFAULT", "service_token")])
    public = tmp_path / "public.conf"
    public.write_text("[DEFAULT]\nworkers = 2\n")
    public.chmod(0o644)
    config.check_private(config.load(public, SCHEMA), [("DEFAULT", "service_token")])


def test_a_database_password_in_a_file_others_can_read_stops_the_service(tmp_path):
    conf = tmp_path / "chute-api.conf"
    conf.write_text("[database]\nconnection = postgresql://chute:s3cret@127.0.0.1:9/chute\n"
                    f"[glance_store]\nfilesystem_store_datadir = {tmp_path}/images\n")
    conf.chmod(0o644)
    result = subprocess.run([CHUTE_API, "--config-file", str(conf)], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"chute-api: {conf}: [database] connection: is a secret, but the file is readable by "
        f"others (mode 0644); chmod 600 {conf}"]


def test_a_taken_port_stops_the_service_with_one_line(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run(f"[DEFAULT]\nbind_port = {port}\n[glance_store]\n"
                     f"filesystem_store_datadir = {tmp_path}/images\n", tmp_path)
    assert result.returncode == 1
    # Above it only the log of the start-up (the database created and migrated).
    assert [line for line in result.stderr.splitlines() if line.startswith("chute-api")] == [
        f"chute-api: {tmp_path / 'chute-api.conf'}: [DEFAULT] bind_port: cannot listen on "
        f"127.0.0.1:{port}: Address already in use"]
    assert "Traceback" not in result.stderr


def test_make_run_passes_its_arguments_to_chute_up():
    root = Path(__file__).resolve().parent.parent
    result = subprocess.run(["make", "-n", "-C", str(root), "run", "ARGS=--show-locations"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "chute up --data-dir ./var --show-locations" in result.stdout
