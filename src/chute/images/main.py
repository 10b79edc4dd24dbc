"""`chute-api --config-file F [--show-config]`: check everything, recover, then serve.

All checks that can fail (config values, datadirs, metadata file, database) run before the
server forks, so a bad setup stops the service with one line on stderr and exit status 1.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import TYPE_CHECKING

from chute import config, log
from chute.errors import ChuteError
from chute.httpapi import install_log_filter
from chute.images.options import SCHEMA

if TYPE_CHECKING:
    from chute.stores.filesystem import FilesystemStore

LOG = logging.getLogger("chute.images")
WORKER_HEARTBEAT = 60  # seconds; see main()


def _check(conf: config.Config) -> None:
    from chute.images.data import parse_quota

    try:
        parse_quota(conf.get("DEFAULT", "user_storage_quota"))
    except ValueError as exc:
        raise conf.fail("DEFAULT", "user_storage_quota", str(exc)) from None


def prepare(conf: config.Config) -> "FilesystemStore":
    """Validate the store, migrate the database, undo what a crash left behind."""
    from chute import stores
    from chute.images.app import database_url
    from chute.images.db import Database, make_engine, migrate

    store = stores.from_config(conf)
    url = database_url(conf, store)
    try:
        engine = make_engine(url)
        migrate(engine)
    except Exception as exc:  # the driver's own error types vary by backend
        raise conf.fail("database", "connection", f"cannot open {url}: {exc}") from None
    db = Database(engine)
    removed = store.recover()
    # On a shared database (PostgreSQL) other API nodes may be uploading right now: only the
    # images whose temporary files this host left are ours to requeue. SQLite is one node.
    interrupted = db.reset_saving(None if db.single_node else list(removed.values()))
    for image_id in interrupted:
        LOG.warning("image %s was left in 'saving' by a crash; it is 'queued' again", image_id)
    removed.update(store.recover(interrupted))
    for path in removed:
        LOG.warning("removed temporary file %s left by an interrupted upload", path)
    engine.dispose()
    return store


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="chute-api", description=__doc__.splitlines()[0])
    parser.add_argument("--config-file", help="chute-api.conf (default: built-in defaults)")
    parser.add_argument("--show-config", action="store_true",
                        help="print the effective configuration and exit")
    args = parser.parse_args(argv)
    try:
        conf = config.load(args.config_file, SCHEMA)
        _check(conf)
        if args.show_config:
            sys.stdout.write(config.dump(conf, SCHEMA))
            return 0
        log.setup(conf.get("DEFAULT", "log_file") or None, conf.get("DEFAULT", "debug"))
        install_log_filter()
        store = prepare(conf)
    except ChuteError as exc:
        print(f"chute-api: {exc.message}", file=sys.stderr)
        return 1

    from chute.images.app import make_app
    from chute.wsgi_server import serve

    d = conf.section("DEFAULT")
    LOG.info("chute-api listening on http://%s:%s/ (%d workers)", d["bind_host"],
             d["bind_port"], d["workers"])
    # gunicorn's `timeout` is not a client timeout for gthread workers: it is how long the
    # worker's main loop may go without a heartbeat before the master SIGKILLs the worker with
    # every request in it. That loop closes dropped connections itself, lingering up to 2 s on
    # each, so a few stalled clients dropped at once would get a low timeout's worker killed.
    serve(lambda: make_app(conf, store), d["bind_host"], d["bind_port"], d["workers"],
          threads=d["threads"], timeout=max(d["client_socket_timeout"], WORKER_HEARTBEAT))
    return 0


if __name__ == "__main__":
    sys.exit(main())
