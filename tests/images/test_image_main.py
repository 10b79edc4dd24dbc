"""chute-api's processes load only what they serve with, seen from outside: in /proc/PID/maps
and in the import-time profile (PYTHONPROFILEIMPORTTIME) each process writes to stderr.

Every process of the service counts towards its memory (each has its own RSS), so the master
must not hold the database layer, and no process may keep Alembic: the migrations run in a
short-lived child before gunicorn starts (chute.images.main). Extension modules (.so files)
stay mapped once imported, so a process's maps tell what it imported without asking it.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from tests.helpers.importtime import PROFILE_IMPORTS, imported_modules, imported_packages
from tests.helpers.procs import children


def mapped_files(pid: int) -> set[str]:
    with open(f"/proc/{pid}/maps") as handle:
        return {line.split(None, 5)[5].strip() for line in handle if len(line.split()) == 6}


def loaded(files: set[str], marker: str) -> bool:
    return any(marker in path for path in files)


def module_dir(name: str) -> str:
    spec = importlib.util.find_spec(name)
    assert spec is not None and spec.origin is not None
    return str(Path(spec.origin).parent) + os.sep


def upload_until_each_worker_served(url: str, workers: list[int]) -> None:
    """Small raw uploads on new connections until every worker has opened the database.

    Which worker accepts a connection is the kernel's choice, so a fixed number of uploads can
    all land on one worker; a worker's first request maps _sqlite3, which tells it has served.
    """
    for _ in range(200):
        if all(loaded(mapped_files(worker), "_sqlite3") for worker in workers):
            return
        with requests.Session() as session:  # one connection: the same worker creates and takes
            created = session.post(f"{url}/v2/images", json={
                "name": "x", "disk_format": "raw", "container_format": "bare"})
            assert created.status_code == 201
            put = session.put(f"{url}/v2/images/{created.json()['id']}/file",
                              data=b"\1" * 65536,
                              headers={"Content-Type": "application/octet-stream"})
            assert put.status_code == 204
    pytest.fail("200 uploads on new connections never reached every worker")


def test_master_holds_no_database_layer_and_no_process_keeps_alembic(api_server):
    if importlib.util.find_spec("markupsafe._speedups") is None:
        pytest.skip("MarkupSafe has no C extension here: Mako leaves no trace in /proc/PID/maps")
    master = api_server.proc.pid
    workers = children(master)
    assert len(workers) == 2
    upload_until_each_worker_served(api_server.url, workers)
    sqlalchemy, markupsafe = module_dir("sqlalchemy"), module_dir("markupsafe")
    # Format inspection leaves oslo's LUKS decryption, and with it cryptography, unloaded.
    cryptography = module_dir("cryptography")

    master_files = mapped_files(master)
    assert not loaded(master_files, "_sqlite3")
    assert not loaded(master_files, sqlalchemy)
    # Mako (Alembic's template engine) imports MarkupSafe, whose C extension stays mapped.
    assert not loaded(master_files, markupsafe)
    for worker in workers:
        files = mapped_files(worker)
        assert loaded(files, sqlalchemy)  # the same check sees what a worker did import
        assert not loaded(files, markupsafe)
        assert not loaded(files, cryptography)


def test_every_process_runs_without_docstrings_and_is_still_named_chute_api(api_server):
    """chute-api runs itself again under PYTHONOPTIMIZE=2 (python -OO) before it serves:
    docstrings are megabytes of every process's RSS. The same console script, so ps, pgrep
    and an operator's scripts still find chute-api."""
    master = api_server.proc.pid
    workers = children(master)
    assert len(workers) == 2
    for pid in [master, *workers]:
        assert Path(f"/proc/{pid}/comm").read_text().strip() == "chute-api"
        assert b"PYTHONOPTIMIZE=2" in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    assert requests.get(f"{api_server.url}/v2/images").status_code == 200


def test_help_names_the_command_without_its_docstring():
    """--help's description is a constant: under -OO the module has no docstring to take."""
    result = subprocess.run([str(Path(sys.executable).parent / "chute-api"), "--help"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "check everything, recover, then" in result.stdout


# Libraries only another configuration needs: web-download (urllib3), the keystone strategy
# (keystonemiddleware, its oslo.config and requests), a policy file (oslo.policy). Each is
# ~1-10 MiB of RSS in every worker that imports it.
NOT_FOR_NOAUTH = ("urllib3", "requests", "keystonemiddleware", "keystoneauth1", "oslo_config",
                  "oslo_policy")


def test_a_noauth_service_imports_no_library_only_other_configurations_use(
        start_api, monkeypatch, request):
    for name, value in PROFILE_IMPORTS.items():
        monkeypatch.setenv(name, value)  # every process of the service: master, child, workers
    api = start_api()
    with requests.Session() as session:
        created = session.post(f"{api.url}/v2/images", json={
            "name": "x", "disk_format": "raw", "container_format": "bare"})
        assert created.status_code == 201
        image = f"{api.url}/v2/images/{created.json()['id']}"
        put = session.put(f"{image}/file", data=b"\1" * 65536,
                          headers={"Content-Type": "application/octet-stream"})
        assert put.status_code == 204
        assert session.get(f"{image}/file").content == b"\1" * 65536
        patched = session.patch(image, json=[{"op": "add", "path": "/k", "value": "v"}],
                                headers={"Content-Type":
                                         "application/openstack-images-v2.1-json-patch"})
        assert patched.status_code == 200
        assert session.get(f"{api.url}/v2/images").status_code == 200
    not_used = set(NOT_FOR_NOAUTH)
    if request.config.getoption("--db-backend") != "postgresql":
        not_used.add("psycopg")  # the PostgreSQL driver, with a SQLite database
    profile = api.log_path.read_text(errors="replace")
    imported = imported_packages(profile)
    assert {"sqlalchemy", "falcon", "jsonschema"} <= imported  # the workers' profile was read
    assert not imported & not_used, sorted(imported & not_used)
    # It serves the image API's OpenAPI document, never the compute API's.
    assert "chute.openapi.images" in imported_modules(profile)
    assert "chute.openapi.compute" not in imported_modules(profile)


@pytest.mark.parametrize("umask, store_options, file_mode", [
    (0o022, {}, 0o640),                                      # data is not for every local user
    (0o077, {}, 0o600),                                      # a stricter umask wins
    (0o022, {"filesystem_store_file_perm": 644}, 0o644),     # the operator asked for it
])
def test_image_files_and_database_are_private_by_default(start_api, umask, store_options,
                                                         file_mode):
    previous = os.umask(umask)  # the service inherits it, as from the operator's shell
    try:
        api = start_api(glance_store=store_options)
    finally:
        os.umask(previous)
    created = requests.post(f"{api.url}/v2/images", json={
        "name": "x", "disk_format": "raw", "container_format": "bare"}).json()
    put = requests.put(f"{api.url}/v2/images/{created['id']}/file", data=b"\1" * 4096,
                       headers={"Content-Type": "application/octet-stream"})
    assert put.status_code == 204
    assert (api.datadir / created["id"]).stat().st_mode & 0o777 == file_mode
    traverse = (0o010 if file_mode & 0o070 else 0) | (0o001 if file_mode & 0o007 else 0)
    assert api.datadir.stat().st_mode & 0o777 == (0o750 & ~umask) | traverse
    databases = list(api.datadir.parent.glob("chute-api.sqlite*"))
    assert databases
    for path in databases:
        assert path.stat().st_mode & 0o777 == 0o640 & ~umask, path
