"""`chute-api --config-file F [--show-config]`: check everything, recover, then serve.

All checks that can fail (config values, datadirs, metadata file, database) run before the
server forks, so a bad setup stops the service with one line on stderr and exit status 1.

Memory: every process of the service counts (gunicorn master + workers, each with its own
RSS). The database checks, the Alembic migrations and the crash recovery run in a short-lived
forked child (`_prepare_in_child`), so SQLAlchemy, Alembic and Mako never enter the master; the
master imports only gunicorn, the config and the store, and each worker imports the app after
the fork. Measured with 2 workers, fresh: master 77 -> 27 MiB RSS; workers 60 -> 49 MiB each
(with chute.formats no longer loading cryptography and models.py no longer the ORM).

Where it goes now (`make bench SCENARIO=memory`, idle, 2 workers): master 29 MiB, of which
~15 MiB anonymous (Python, gunicorn and the stdlib it imports) that each forked worker counts
again; each worker ~49 MiB; HAProxy 16. What a worker imports after the fork, ~24 MiB: SQLAlchemy
~12 (+2 once its engine runs), falcon ~4.5 (asyncio included), jsonschema and its `referencing`
~3, oslo.utils' format inspector ~0.8, blake3 ~0.5, chute ~1.5. Libraries only another
configuration needs stay out (tests/images/test_image_main.py): the keystone stack and
oslo.policy (auth_strategy), urllib3 (web-download), psycopg (a postgresql URL), Alembic.

At the peak of a busy service (api_load, list_cost, slow_clients, then the memory scenario's
1 GiB PUT + GET; smaps_rollup per process, 2026-12-07): 159 MiB = master 29.3 (17.7
anonymous, which each worker counts again, + 11.6 of shared libraries) + the uploading worker
58.7 + the other 53.6 + HAProxy 17.6 (11.2 of it shared libraries: libcrypto 3.8, its own
binary 2.8; PSS 7). Glance 33 in the same conditions: 261 fresh, 277 busy, so 0.57-0.59 (PSS
0.46). A worker's RSS = the master's anonymous pages (17.7) + its own imports (21.4:
SQLAlchemy 13.2, falcon 5.1 with asyncio, jsonschema 3.1) + libraries (~10) + what serving
adds (~5.5: SQLite's caches ~2 by sqlite3_memory_used, Python objects alive ~1 by tracemalloc,
the rest allocator pages those pin) + an upload's ring (~4.6, the uploading worker only).
Tried and dropped, for no effect within 0.5 MiB on that run: one malloc arena instead of two,
PYTHONMALLOC=malloc (+5 MiB), SQLite cache_size -256 with 16 cached statements, malloc_trim in
the master before the fork, -X no_debug_ranges (0.3 per process). HAProxy's global maxconn
4096 saved 0.6 MiB but HAProxy then refuses to start under a hard fd limit below it (1024); a
64 KiB glibc mmap threshold in HAProxy saved 1; its other settings (tune.bufsize, no memory
trimming, nbthread is 1 already) nothing at idle: 11 of its 15.7 MiB are pages of its shared
libraries and binary (libcrypto's 3.9, touched by OpenSSL's start-up).

Since then every process runs under -OO (_without_docstrings): master 28.3, each worker 3.5
less, memory bench 139-141 MiB at the peak against Glance's 261, 0.53-0.54 (the same peak
without the front end's process: 0.48). Each worker's own imports under -OO, measured as what
importing each adds last: SQLAlchemy 10.6 MiB, falcon 3.3, jsonschema 3.0. 0.5 is a decision
about a component, not a setting: the workers' database layer on the sqlite3 module (and
psycopg) instead of SQLAlchemy would save ~21 MiB (0.45), the front end's process 15.7 (0.48).
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import os
import socket
import sys
import traceback
from typing import TYPE_CHECKING

from chute import config, log
from chute.errors import ChuteError
from chute.front_end import FrontEndSettings
from chute.front_end import find_binary as find_front_end
from chute.images.options import SCHEMA, ApiSettings, ServerSettings

if TYPE_CHECKING:
    from chute.auth.middleware import WSGIApp
    from chute.stores.backends import Backends

LOG = logging.getLogger("chute.images")
WORKER_HEARTBEAT = 60  # seconds; see main()
UPLOAD_PATHS = r"^/v2/images/[^/]+/file$"  # the PUTs whose body streams to a worker


def prepare(settings: ApiSettings, fail: config.Fail) -> Backends:
    """Validate the store, migrate the database, undo what a crash left behind."""
    from chute import stores
    from chute.images.app import database_url
    from chute.images.db import Database, make_engine, migrate
    from chute.images.recovery import recover

    store = stores.from_settings(settings.store, fail)
    url = database_url(settings.database_connection, store)
    try:
        engine = make_engine(url)
        migrate(engine)
    except Exception as exc:  # the driver's own error types vary by backend
        raise fail("database", "connection", f"cannot open {url}: {exc}") from None
    recover(Database(engine), store)
    engine.dispose()
    return store


def _prepare_in_child(settings: ApiSettings, fail: config.Fail) -> str | None:
    """Run `prepare(settings, fail)` in a forked child; None if it succeeded, else what went wrong.

    A child, not this process, so that what preparing imports (SQLAlchemy, Alembic, Mako, the
    app's modules: ~50 MiB of RSS) goes away with it instead of staying in the gunicorn master
    for the life of the service. The child sends its one-line error back through a pipe, so
    the parent reports it exactly as it reports a bad option value.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_end)
        _prepare_and_exit(settings, fail, write_end)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        message = pipe.read().decode(errors="replace")
    _, wait_status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(wait_status)
    if code == 0:
        return None
    return message or f"preparing the service failed (child exit status {code})"


def _prepare_and_exit(settings: ApiSettings, fail: config.Fail, report_fd: int) -> None:
    """The child's side: prepare, write the error (if any) to `report_fd`, never return."""
    status, message = 1, ""
    try:
        prepare(settings, fail)
        status = 0
    except ChuteError as exc:
        message = exc.message
    except BaseException as exc:  # anything else: report it, then exit 1
        traceback.print_exc()
        message = f"preparing the service failed: {type(exc).__name__}: {exc}"
    finally:
        try:
            os.write(report_fd, message.encode())
            logging.shutdown()
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(status)


def _worker_app(settings: ApiSettings, store: Backends) -> WSGIApp:
    """The app, built in each worker after the fork (imports happen here, not in the master)."""
    from chute.auth.middleware import wrap
    from chute.httpapi import install_log_filter
    from chute.images.app import make_app

    install_log_filter()
    return wrap(make_app(settings, store), settings.auth)


def listen(server: ServerSettings, fail: config.Fail) -> socket.socket:
    """The public socket, taken before anything else starts: a busy port is one line naming
    the option (the front end is handed this very socket, so nothing can take it meanwhile)."""
    from chute.wsgi_server import listen as listen_on

    host, port = server.bind_host, server.bind_port
    try:
        return listen_on(host, port)
    except OSError as exc:
        raise fail("DEFAULT", "bind_port", f"cannot listen on {host}:{port}: {exc.strerror}") \
            from None


# The first line of this module's docstring, which -OO drops (_without_docstrings).
DESCRIPTION = "`chute-api --config-file F [--show-config]`: check everything, recover, then serve."
OPTIMIZE = "PYTHONOPTIMIZE"


def _without_docstrings() -> None:
    """Run this very command again under PYTHONOPTIMIZE=2 (`python -OO`), unless it already is,
    the operator set PYTHONOPTIMIZE, or the -OO bytecode is missing (_optimized_bytecode):
    never returns when it runs it again.

    Docstrings are code constants, loaded with every module and never read by a service: the
    libraries' take megabytes (SQLAlchemy's 1.6 of its 12.2 MiB in a worker), and the master
    and each worker hold their own copy (every process's RSS counts). Measured with 2 workers,
    fresh: master 29.4 -> 28.3 MiB, each worker 47.4 -> 44.0, all 139.9 -> 131.7 at idle and
    147-149 -> 138-139 at a 1 GiB PUT's peak; the memory bench 0.57 -> 0.53 of Glance.
    -OO drops asserts too: chute's are type narrowing (a None seen as a bug), never a check of
    a request or of data. Run again as the same command (the console script, so the processes
    are still named chute-api), with the same pid, before anything is opened or started.
    """
    if OPTIMIZE in os.environ or sys.flags.optimize >= 2 or not _optimized_bytecode():
        return
    env = {**os.environ, OPTIMIZE: "2"}
    sys.stdout.flush()
    sys.stderr.flush()
    script = sys.argv[0]
    if os.path.isfile(script) and os.access(script, os.X_OK):
        os.execve(script, sys.argv, env)
    os.execve(sys.executable, [sys.executable, "-m", "chute.images.main", *sys.argv[1:]], env)


def _optimized_bytecode() -> bool:
    """Whether the libraries' -OO bytecode (.opt-2.pyc) was written (`make install` does;
    pip writes only the plain one). Without it every process would compile them again at
    each start, in seconds of CPU, and keep more memory than it saves (measured: +2 MiB of
    RSS per process instead of -3.5), where a service cannot write it (a read-only venv, or
    PYTHONDONTWRITEBYTECODE). SQLAlchemy stands for them all: the largest."""
    spec = importlib.util.find_spec("sqlalchemy")
    if spec is None or spec.origin is None:
        return False
    return os.path.exists(importlib.util.cache_from_source(spec.origin, optimization=2))


def main(argv: list[str] | None = None) -> int:
    if argv is None:  # the command itself, not a caller in this process (tests)
        _without_docstrings()
    parser = argparse.ArgumentParser(prog="chute-api", description=DESCRIPTION)
    parser.add_argument("--config-file", help="chute-api.conf (default: built-in defaults)")
    parser.add_argument("--show-config", action="store_true",
                        help="print the effective configuration and exit")
    args = parser.parse_args(argv)
    try:
        conf = config.load(args.config_file, SCHEMA)
        settings = ApiSettings.from_config(conf)
        if args.show_config:
            sys.stdout.write(config.dump(conf, SCHEMA))
            return 0
        secrets = [("DEFAULT", "service_token")]
        if config.url_has_password(settings.database_connection):
            secrets.append(("database", "connection"))
        config.check_private(conf, secrets)
        settings.auth.check_policy(conf)
        config.private_umask()  # image files, the database, the log: 0640 / dirs 0750
        log.setup(settings.server.log_file or None, settings.server.debug)
        find_front_end()
    except ChuteError as exc:
        print(f"chute-api: {exc.message}", file=sys.stderr)
        return 1
    failed = _prepare_in_child(settings, conf.fail)
    if failed is not None:
        print(f"chute-api: {failed}", file=sys.stderr)
        return 1
    from chute import stores

    try:
        # Loaded once here, as before the child existed: a worker respawned later serves the
        # store (datadirs, metadata file) the service was started with. Built in each worker
        # instead, it cost more, not less: idle RSS of master + 2 workers 134.6 vs 131.4 MiB.
        store = stores.from_settings(settings.store, conf.fail)
        listener = listen(settings.server, conf.fail)
    except ChuteError as exc:
        print(f"chute-api: {exc.message}", file=sys.stderr)
        return 1

    from chute.wsgi_server import serve

    server = settings.server
    settings.auth.log_start("chute-api")
    LOG.info("chute-api listening on http://%s:%s/ (%d workers)", server.bind_host,
             server.bind_port, server.workers)
    # gunicorn's `timeout` is not a client timeout for gthread workers: it is how long the
    # worker's main loop may go without a heartbeat before the master SIGKILLs the worker with
    # every request in it. That loop closes dropped connections itself, lingering up to 2 s on
    # each, so a few stalled clients dropped at once would get a low timeout's worker killed.
    front = FrontEndSettings(server.client_socket_timeout, server.workers * server.threads,
                             upload_paths=UPLOAD_PATHS)
    try:
        serve(lambda: _worker_app(settings, store), listener, front, server.workers,
              threads=server.threads, timeout=max(server.client_socket_timeout, WORKER_HEARTBEAT))
    except ChuteError as exc:
        print(f"chute-api: {exc.message}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
