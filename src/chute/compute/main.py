"""`chute-compute --config-file F [--show-config]` and `chute-compute ... explain IMAGE_ID`.

One gunicorn worker (gthread) serves the API: the build threads, the per-instance locks and the
cache cleanup must live in one process. Everything that can be wrong with the configuration is
checked before the server starts, so a bad file stops the agent with one line naming the option
instead of a worker that fails to boot.
"""

from __future__ import annotations

import argparse
import logging
import socket
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from chute import config, httpapi
from chute import log as chute_log
from chute.compute import db, virt
from chute.compute.fetch.shared_fs import filesystems
from chute.compute.options import SCHEMA
from chute.errors import ChuteError, ConfigError

LOG = logging.getLogger("chute.compute")
PROG = "chute-compute"


def validate(conf: config.Config) -> None:
    """Rules between options that the per-option schema cannot express."""
    filesystems(conf)  # each listed name has its section, an id (unique), an absolute mountpoint
    if not conf.get("glance", "api_servers"):
        raise conf.fail("glance", "api_servers", "needs at least one image service endpoint")
    try:
        virt.load(conf.get("DEFAULT", "compute_driver"))
    except ValueError as exc:
        raise conf.fail("DEFAULT", "compute_driver", str(exc)) from None


def prepare(conf: config.Config) -> None:
    """Create the directories and state database the agent needs, naming the option on error."""
    instances_path = conf.get("DEFAULT", "instances_path")
    try:
        Path(instances_path, "_base").mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise conf.fail("DEFAULT", "instances_path",
                        f"cannot create {instances_path}: {exc.strerror}") from None
    log_file = conf.get("DEFAULT", "log_file")
    if log_file:
        try:
            with open(log_file, "a", encoding="utf-8"):
                pass
        except OSError as exc:
            raise conf.fail("DEFAULT", "log_file", f"cannot be opened: {exc.strerror}") from None
    try:
        db.InstanceStore(state_url(conf)).close()
    except Exception as exc:  # SQLAlchemy raises many kinds
        raise conf.fail("DEFAULT", "state_connection",
                        f"cannot open the state database: {exc}") from None


def check_bind(conf: config.Config) -> None:
    """gunicorn would retry a taken port for seconds and then print several lines; say it once."""
    host, port = conf.get("DEFAULT", "bind_host"), conf.get("DEFAULT", "bind_port")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise conf.fail("DEFAULT", "bind_port",
                            f"cannot listen on {host}:{port}: {exc.strerror}") from None


def state_url(conf: config.Config) -> str:
    return conf.get("DEFAULT", "state_connection") or db.default_url(
        conf.get("DEFAULT", "instances_path"))


def image_client(conf: config.Config) -> Any:
    from chute.compute.image_service import FailoverImageService
    return FailoverImageService.from_conf(conf)


def build_app(conf: config.Config) -> Any:
    """Runs in the worker after fork: threads and database connections start here."""
    from chute.compute.api import create_app
    from chute.compute.imagecache import ImageCache
    from chute.compute.manager import ComputeManager

    client = image_client(conf)
    manager = ComputeManager(conf, db.InstanceStore(state_url(conf)), client,
                             ImageCache(conf, client),
                             virt.load(conf.get("DEFAULT", "compute_driver")))
    manager.start()
    return create_app(manager)


def explain(conf: config.Config, image_id: str) -> str:
    from chute.compute.explain import explain as explain_image
    return explain_image(conf, image_client(conf), image_id)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description="chute compute agent")
    parser.add_argument("--config-file", metavar="F", help="chute-compute.conf")
    parser.add_argument("--show-config", action="store_true",
                        help="print the effective configuration and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    ex = sub.add_parser("explain", help="say how this host would fetch an image, and why")
    ex.add_argument("image_id", metavar="IMAGE_ID")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        conf = config.load(args.config_file, SCHEMA)
        validate(conf)
        if args.show_config:
            sys.stdout.write(config.dump(conf, SCHEMA))
            return 0
        if args.command == "explain":
            print(explain(conf, args.image_id))
            return 0
        check_bind(conf)
        prepare(conf)
    except ConfigError as exc:
        print(f"{PROG}: {exc.message}", file=sys.stderr)
        return 1
    except ChuteError as exc:
        print(f"{PROG}: {exc.message}", file=sys.stderr)
        return 1
    chute_log.setup(conf.get("DEFAULT", "log_file") or None, conf.get("DEFAULT", "debug"))
    httpapi.install_log_filter()
    host, port = conf.get("DEFAULT", "bind_host"), conf.get("DEFAULT", "bind_port")
    LOG.info("chute-compute listening on %s:%s, instances in %s", host, port,
             conf.get("DEFAULT", "instances_path"))
    from chute.wsgi_server import serve
    serve(lambda: build_app(conf), host, port, workers=1, threads=8)
    return 0


if __name__ == "__main__":
    sys.exit(main())
