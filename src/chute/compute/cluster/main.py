"""`chute-compute-api --config-file F [--show-config]`: the Nova API for many hosts.

Stateless: `osapi_compute_workers` gunicorn workers (gthread) behind its own HAProxy front end
(chute.front_end), any number of nodes on one database. Every check of the configuration runs
before the server starts, so a bad file stops it with one line naming the option.
"""

from __future__ import annotations

import argparse
import logging
import socket
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from chute import config, httpapi
from chute import log as chute_log
from chute.auth.options import AuthSettings
from chute.compute.cluster.options import SCHEMA
from chute.compute.settings import ManagerSettings, check_http_url
from chute.errors import ChuteError, ConfigError
from chute.front_end import FrontEndSettings
from chute.front_end import find_binary as find_front_end

if TYPE_CHECKING:
    from chute.auth.middleware import WSGIApp
    from chute.compute.cluster.service import ClusterService, ClusterSettings

LOG = logging.getLogger("chute.compute")
PROG = "chute-compute-api"
API_THREADS = 8  # request threads of each worker


def manager_settings(conf: config.Config) -> ManagerSettings:
    d = conf.section("DEFAULT")
    return ManagerSettings("", "qcow2", 0, "nova", d["force_config_drive"],
                           quota=tuple(conf.section("quota").items()))


def cluster_settings(conf: config.Config) -> ClusterSettings:
    from chute.compute.cluster.service import ClusterSettings
    return ClusterSettings(manager_settings(conf), conf.get("DEFAULT", "service_down_time"),
                           conf.get("scheduler", "max_attempts"))


def validate(conf: config.Config) -> tuple[str, AuthSettings]:
    """(the database URL, the auth settings), or a ConfigError naming the option."""
    url = conf.get("database", "connection")
    if not url:
        raise conf.fail("database", "connection", "must be set (sqlite:///PATH or "
                        "postgresql://...)")
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError
    try:
        make_url(url)
    except ArgumentError as exc:
        raise conf.fail("database", "connection", f"is not a database URL: {exc}") from None
    servers = conf.get("glance", "api_servers")
    if not servers:
        raise conf.fail("glance", "api_servers", "needs at least one image service endpoint")
    for server in servers:
        check_http_url(conf, "glance", "api_servers", server)
    auth = AuthSettings.from_config(conf, conf.get("DEFAULT", "bind_host"))
    auth.check_policy(conf)
    return url, auth


def service_token(conf: config.Config) -> str | Callable[[], str] | None:
    """This service's identity towards the image service and the agents."""
    token = conf.get("glance", "service_token")
    if conf.get("DEFAULT", "auth_strategy") == "keystone" and not token:
        from chute.auth.service_auth import token_provider
        return token_provider({k: v for k, v in conf.section("keystone_authtoken").items()
                               if v})
    return token or None


def service(conf: config.Config, url: str) -> ClusterService:
    """The one place the cluster service is built (its tables are created on the way)."""
    from chute.compute.aggregates import Aggregates
    from chute.compute.cluster.dispatch import AgentClient
    from chute.compute.cluster.registry import Registry
    from chute.compute.cluster.service import ClusterService
    from chute.compute.db import InstanceDB
    from chute.compute.image_service import FailoverImageService
    from chute.compute.operators import make_scheduler

    settings = cluster_settings(conf)
    token = service_token(conf)
    state = InstanceDB(url)
    images = FailoverImageService(conf.get("glance", "api_servers"), token=token,
                                  num_retries=conf.get("glance", "num_retries"))
    cluster = ClusterService(settings, state, images,
                             Registry(state.engine, settings.service_down_time),
                             make_scheduler(conf, state.engine, images), AgentClient(token))
    cluster.zone_hosts = Aggregates(state.engine).zoned
    return cluster


def prepare(conf: config.Config, url: str) -> None:
    """Create the database's tables once, before the workers start, naming the option on
    failure (a database that cannot be reached, a missing driver)."""
    try:
        service(conf, url).db.close()
    except Exception as exc:  # SQLAlchemy and the drivers raise many kinds
        raise conf.fail("database", "connection",
                        f"cannot open the compute database: {exc}") from None


def build_app(conf: config.Config, url: str, auth: AuthSettings) -> WSGIApp:
    """Runs in each worker after fork: threads and database connections start here."""
    from chute.auth.middleware import wrap
    from chute.compute import operators
    from chute.compute.api import create_app
    from chute.compute.cluster import internal_api

    cluster = service(conf, url)
    cluster.start()
    app = create_app(cluster, auth)
    precache = operators.add_routes(app, cluster, auth)
    internal_api.add_routes(app, cluster, auth.strategy, precache)
    return wrap(app, auth)


def listen(conf: config.Config) -> socket.socket:
    from chute.wsgi_server import listen as listen_on
    host, port = conf.get("DEFAULT", "bind_host"), conf.get("DEFAULT", "bind_port")
    try:
        return listen_on(host, port)
    except OSError as exc:
        raise conf.fail("DEFAULT", "bind_port",
                        f"cannot listen on {host}:{port}: {exc.strerror}") from None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description="chute compute API (many hosts)")
    parser.add_argument("--config-file", metavar="F", help="chute-compute-api.conf")
    parser.add_argument("--show-config", action="store_true",
                        help="print the effective configuration and exit")
    parser.add_argument("command", nargs="*", metavar="explain SERVER",
                        help="say why SERVER was placed on its host and not the others, "
                             "from the compute database, and exit")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        conf = config.load(args.config_file, SCHEMA)
        url, auth = validate(conf)
        if args.show_config:
            sys.stdout.write(config.dump(conf, SCHEMA))
            return 0
        if args.command:
            from chute.compute.operators import explain_command
            sys.stdout.write(explain_command(url, args.command))
            return 0
        secrets = [("glance", "service_token")]
        if config.url_has_password(url):
            secrets.append(("database", "connection"))
        config.check_private(conf, secrets)
        config.private_umask()
        find_front_end()
        listener = listen(conf)
        prepare(conf, url)
    except (ConfigError, ChuteError) as exc:
        print(f"{PROG}: {exc.message}", file=sys.stderr)
        return 1
    d = conf.section("DEFAULT")
    chute_log.setup(d["log_file"] or None, d["debug"])
    httpapi.install_log_filter()
    auth.log_start(PROG)
    LOG.info("%s listening on %s:%s, database %s", PROG, d["bind_host"], d["bind_port"],
             url.split("@")[-1])
    from chute.wsgi_server import serve
    front = FrontEndSettings(conf.get("wsgi", "client_socket_timeout"),
                             API_THREADS * d["osapi_compute_workers"])
    try:
        serve(lambda: build_app(conf, url, auth), listener, front,
              workers=d["osapi_compute_workers"], threads=API_THREADS)
    except ChuteError as exc:
        print(f"{PROG}: {exc.message}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
