"""Fixtures shared by every test directory: real chute-api and chute-compute servers on free
loopback ports (subprocesses), small images, an XFS with reflinks, a peer that hangs up.

`start_api(**overrides)` writes a chute-api.conf under a temporary root, starts
`chute-api --config-file F` from this virtualenv, waits for `GET /versions` and stops the server
at teardown. Overrides are `{"DEFAULT": {...}, "glance_store": {...}, ...}` merged over the test
defaults (locations shown, metadata file `{"id": "shared-fs-1", "mountpoint": <root>/store}`,
datadir `<root>/store/images`, 2 workers). The classes and config writers are in
tests/helpers/services.py; plain helpers are imported as `tests.helpers.NAME`.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import threading
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from tests.helpers.disks import make_qcow2
from tests.helpers.polling import wait_for
from tests.helpers.postgres import Cluster
from tests.helpers.services import (
    ApiServer,
    ComputeServer,
    api_on_database,
    compute_on_database,
    prepare_api,
    prepare_compute,
)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--db-backend", choices=("sqlite", "postgresql"), default="sqlite",
                     help="the database the test servers of chute-api and chute-compute use "
                          "(`make test` runs the image and compute suites with each)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """With --db-backend=postgresql, run only what the backend can change: a test whose servers
    do not take their database from `database_url` would run on SQLite again, exactly as in the
    main pass, and a test marked `backend_independent` says its behaviour does not depend on
    the database. A new test that starts its servers through the fixtures is included."""
    if config.getoption("--db-backend") != "postgresql":
        return
    kept, left = [], []
    for item in items:
        on_database = "database_url" in getattr(item, "fixturenames", ())
        if on_database and item.get_closest_marker("backend_independent") is None:
            kept.append(item)
        else:
            left.append(item)
    if left:
        config.hook.pytest_deselected(items=left)
        items[:] = kept


@pytest.fixture(scope="session")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """A private PostgreSQL cluster for the session (tests.helpers.postgres)."""
    cluster = Cluster.create(tmp_path_factory.mktemp("postgres"))
    yield cluster
    cluster.stop()


@pytest.fixture(scope="session")
def db_backend(request: pytest.FixtureRequest) -> str:
    """"sqlite" or "postgresql": the --db-backend of this run."""
    return str(request.config.getoption("--db-backend"))


@pytest.fixture(scope="session")
def database_url(request: pytest.FixtureRequest) -> Callable[[], str]:
    """A fresh database for each server a test starts: "" (each service's SQLite file, the
    default) or, with --db-backend=postgresql, a new database in the session's cluster."""
    if request.config.getoption("--db-backend") != "postgresql":
        return lambda: ""
    cluster: Cluster = request.getfixturevalue("postgres")
    return cluster.fresh_database


@pytest.fixture
def start_api(tmp_path_factory: pytest.TempPathFactory, database_url: Callable[[], str]
              ) -> Iterator[Callable[..., ApiServer]]:
    servers: list[ApiServer] = []

    def start(**overrides: dict[str, Any]) -> ApiServer:
        server = prepare_api(tmp_path_factory.mktemp("api"),
                             **api_on_database(database_url(), overrides))
        servers.append(server)
        return server.start()

    yield start
    # SIGKILL rather than stop(): gunicorn's shutdown takes 3-6 s on a busy 2-core machine and
    # a test's temporary server has nothing worth shutting down gracefully.
    for server in servers:
        server.kill()


@pytest.fixture
def api_server(start_api: Callable[..., ApiServer]) -> ApiServer:
    return start_api()


@pytest.fixture(scope="session")
def shared_api(tmp_path_factory: pytest.TempPathFactory, database_url: Callable[[], str]
               ) -> Iterator[ApiServer]:
    """One default server for the whole session (tests must not depend on an empty store)."""
    server = prepare_api(tmp_path_factory.mktemp("shared-api"),
                         **api_on_database(database_url(), {}))
    server.start()
    yield server
    server.kill()


# -- chute-compute -------------------------------------------------------------------------

@pytest.fixture(scope="session", autouse=True)
def no_guests_left(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Guests outlive their agent by design (`chute up` uses libvirt where it can): at the end
    of the session, remove every libvirt domain an agent of this session defined."""
    yield
    try:
        from tests.helpers import libvirt as lv
        domains = lv.chute_domains()
    except Exception:  # no libvirt-python or no libvirtd: then there are no guests either
        return
    base = str(tmp_path_factory.getbasetemp())
    for instances_path, dom in domains:
        if instances_path.startswith(base):
            lv.remove(dom)


@pytest.fixture
def start_compute(tmp_path_factory: pytest.TempPathFactory, database_url: Callable[[], str]
                  ) -> Iterator[Callable[..., ComputeServer]]:
    """`start_compute(api=None, **overrides)`: overrides are sections merged over
    compute_defaults (`libvirt={"images_type": "raw"}`, `**{"image_file_url:shared": {...}}`);
    a section given as None is dropped."""
    servers: list[ComputeServer] = []

    def start(api: ApiServer | None = None,
              **overrides: dict[str, Any] | None) -> ComputeServer:
        server = prepare_compute(tmp_path_factory.mktemp("compute"), api,
                                 **compute_on_database(database_url(), overrides))
        servers.append(server)
        return server.start()

    yield start
    # SIGKILL rather than stop(): gunicorn's shutdown takes 3-6 s on a busy 2-core machine and
    # a test's temporary server has nothing worth shutting down gracefully.
    for server in servers:
        server.kill()


# --- small image files ------------------------------------------------------------------------

@pytest.fixture
def raw_image(tmp_path: Path) -> Path:
    """3 MiB of random bytes: a raw disk image whose every byte matters."""
    path = tmp_path / "disk.raw"
    path.write_bytes(os.urandom(3 * 1024 * 1024 + 123))
    return path


@pytest.fixture
def qcow2_image(tmp_path: Path) -> Path:
    """A real qcow2 made by qemu-img, with 1 MiB of data written into it by qemu-io."""
    return make_qcow2(tmp_path / "disk.qcow2", "16M", data_mb=1)


@pytest.fixture(scope="session")
def xfs_reflink(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """An XFS filesystem with reflink=1 on a loop file, mounted for the session (root only;
    skipped with the reason where loop mounts are not permitted; mkfs.xfs comes with
    `make sysdeps`, so its absence is an error, not a skip)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a loop XFS needs root")
    root = tmp_path_factory.mktemp("xfs")
    image, mnt = root / "xfs.img", root / "mnt"
    mnt.mkdir()
    with open(image, "wb") as handle:
        handle.truncate(300 << 20)
    if shutil.which("mkfs.xfs") is None:
        pytest.fail("mkfs.xfs is missing: `make sysdeps` installs xfsprogs")
    made = subprocess.run(["mkfs.xfs", "-q", "-m", "reflink=1", "-f", str(image)],
                          capture_output=True, text=True)
    if made.returncode != 0:
        pytest.skip(f"mkfs.xfs unavailable or failed: {made.stderr.strip()}")
    mounted = subprocess.run(["mount", "-o", "loop", str(image), str(mnt)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"loop mount not permitted here: {mounted.stderr.strip()}")
    yield mnt
    # A service SIGKILLed by a test's teardown is reaped at once, its gunicorn workers a moment
    # later; until they are, their open files keep the mount busy.
    wait_for(lambda: subprocess.run(["umount", str(mnt)], capture_output=True).returncode == 0,
             30, f"{mnt} to be unmounted (nothing left open in it)", interval=0.1)


# -- a peer that misbehaves ------------------------------------------------------------------

@pytest.fixture
def hangup_server() -> Iterator[str]:
    """URL of a loopback HTTP peer that reads a request's head and 1 MiB of its body, then
    closes the connection without answering: a server that dies mid-upload."""
    listener = socket.create_server(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{listener.getsockname()[1]}"

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return  # the listener was closed at teardown
            with conn:
                seen = b""
                while b"\r\n\r\n" not in seen:
                    got = conn.recv(65536)
                    if not got:
                        break
                    seen += got
                body = len(seen.partition(b"\r\n\r\n")[2])
                while body < 1 << 20:
                    got = conn.recv(1 << 20)
                    if not got:
                        break
                    body += len(got)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield url
    listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept(); close() alone does not
    listener.close()
    thread.join(5)
