"""`chute-compute --config-file F [--show-config]` and `chute-compute ... explain IMAGE_ID`.

One gunicorn worker (gthread, API_THREADS threads) serves the API behind the agent's own HAProxy
front end (chute.front_end): the build threads, the per-instance locks and the cache cleanup must
live in one process. Everything that can be wrong with the configuration is
checked before the server starts, so a bad file stops the agent with one line naming the option
instead of a worker that fails to boot.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import socket
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from chute import config, httpapi
from chute import log as chute_log
from chute.auth.options import AuthSettings
from chute.compute import db, virt
from chute.compute.options import SCHEMA
from chute.compute.settings import (
    AgentIdentity,
    AgentSettings,
    CacheSettings,
    ImageServiceSettings,
    ManagerSettings,
    NetworkSettings,
    base_dir,
    virt_settings,
)
from chute.errors import ChuteError, ConfigError
from chute.front_end import FrontEndSettings
from chute.front_end import find_binary as find_front_end

if TYPE_CHECKING:  # for annotations only: the app's modules are imported in the worker
    from chute.auth.middleware import WSGIApp
    from chute.compute.fetch import Fetcher
    from chute.compute.image_service import FailoverImageService, ImageService
    from chute.compute.imagecache import ImageCache
    from chute.compute.manager import ComputeManager

LOG = logging.getLogger("chute.compute")
PROG = "chute-compute"
API_THREADS = 8  # request threads of the one worker


def validate(conf: config.Config) -> AgentSettings:
    """Rules between options that the per-option schema cannot express; -> the agent's settings."""
    ImageServiceSettings.from_config(conf)  # an endpoint; each listed filesystem complete, unique
    ManagerSettings.from_config(conf)  # the availability zone's name
    network = NetworkSettings.from_config(conf)  # bridge mode: a bridge and a range
    if conf.get("DEFAULT", "compute_driver") == "libvirt":
        network.check_bridge(conf)
    agent = AgentSettings.from_config(conf)
    AuthSettings.from_config(conf, agent.bind_host).check_policy(conf)
    AgentIdentity.from_config(conf)  # agent mode: the compute API's URL, this host's own
    return agent


def check_virt(conf: config.Config) -> tuple[virt.VirtSettings, str | None]:
    """The driver's settings in effect, and a line to log if virt_type fell back to qemu.
    libvirtd must answer and, for virt_type = kvm, KVM must run a guest (virt/kvmprobe.py):
    else the agent stops here naming the option, rather than failing every build."""
    settings = virt_settings(conf)
    if settings.compute_driver != "libvirt":
        return settings, None
    try:
        from chute.compute.virt.libvirt import LibvirtDriver
    except ImportError:
        raise conf.fail("DEFAULT", "compute_driver",
                        "libvirt needs libvirt-python: pip install 'chute[libvirt]'") from None
    problem = LibvirtDriver(settings).check()
    if problem is not None:
        raise conf.fail("libvirt", "connection_uri",
                        f"cannot connect to {settings.connection_uri}: {problem}")
    if settings.virt_type != "kvm":
        return settings, None
    from chute.compute.virt.kvmprobe import kvm_problem
    problem = kvm_problem()
    if problem is None:
        return settings, None
    if not settings.allow_virt_type_fallback:
        raise conf.fail("libvirt", "virt_type",
                        f"kvm cannot run guests on this host ({problem}); set virt_type = qemu, "
                        "or allow_virt_type_fallback = true")
    return (dataclasses.replace(settings, virt_type="qemu"),
            f"virt_type = kvm cannot run guests on this host ({problem}); using qemu "
            "(allow_virt_type_fallback = true)")


def prepare(conf: config.Config, agent: AgentSettings) -> None:
    """Create the directories and state database the agent needs, naming the option on error."""
    try:
        Path(base_dir(agent.instances_path)).mkdir(mode=0o750, parents=True, exist_ok=True)
    except OSError as exc:
        raise conf.fail("DEFAULT", "instances_path",
                        f"cannot create {agent.instances_path}: {exc.strerror}") from None
    if agent.log_file:
        try:
            with open(agent.log_file, "a", encoding="utf-8"):
                pass
        except OSError as exc:
            raise conf.fail("DEFAULT", "log_file", f"cannot be opened: {exc.strerror}") from None
    try:
        db.InstanceDB(agent.state_url).close()
    except Exception as exc:  # SQLAlchemy raises many kinds
        raise conf.fail("DEFAULT", "state_connection",
                        f"cannot open the state database: {exc}") from None


def listen(conf: config.Config, agent: AgentSettings) -> socket.socket:
    """The public socket, taken before anything else starts: a busy port is one line naming
    the option (the front end is handed this very socket, so nothing can take it meanwhile)."""
    from chute.wsgi_server import listen as listen_on
    host, port = agent.bind_host, agent.bind_port
    try:
        return listen_on(host, port)
    except OSError as exc:
        raise conf.fail("DEFAULT", "bind_port",
                        f"cannot listen on {host}:{port}: {exc.strerror}") from None


def image_service(conf: config.Config) -> FailoverImageService:
    """The image service over `[glance] api_servers`, with Nova's fail-over policy."""
    from chute.compute.image_service import FailoverImageService
    return FailoverImageService.from_settings(ImageServiceSettings.from_config(conf))


def fetcher(conf: config.Config, service: ImageService) -> Fetcher:
    """The one place a Fetcher is built (for the cache and for explain)."""
    from chute.compute.fetch import Fetcher
    return Fetcher(ImageServiceSettings.from_config(conf), service)


def image_cache(conf: config.Config, service: ImageService | None = None) -> ImageCache:
    from chute.compute.imagecache import ImageCache
    return ImageCache(CacheSettings.from_config(conf),
                      fetcher(conf, service or image_service(conf)))


def build_app(conf: config.Config, virt_in_effect: virt.VirtSettings) -> WSGIApp:
    """Runs in the worker after fork: threads and database connections start here."""
    from chute.auth.middleware import wrap
    from chute.compute.api import create_app
    from chute.compute.manager import ComputeManager
    from chute.compute.network import Network

    agent = AgentSettings.from_config(conf)
    auth = AuthSettings.from_config(conf, agent.bind_host)
    service = image_service(conf)
    state = db.InstanceDB(agent.state_url)
    manager = ComputeManager(ManagerSettings.from_config(conf), state, service,
                             image_cache(conf, service), virt.load(virt_in_effect),
                             Network(NetworkSettings.from_config(conf), state))
    identity = AgentIdentity.from_config(conf)
    if identity is not None:
        return agent_app(conf, identity, manager, auth)
    manager.start()
    return wrap(create_app(manager, auth), auth)


def agent_app(conf: config.Config, identity: AgentIdentity, manager: ComputeManager,
              auth: AuthSettings) -> WSGIApp:
    """An agent of a compute API: its internal endpoints; it registers before it starts
    the builds the compute API resends (compute/cluster/agent.py)."""
    from chute.auth.middleware import wrap
    from chute.compute.cluster import agent_api
    from chute.compute.cluster.agent import Reporter
    from chute.compute.cluster.dispatch import ComputeApiClient

    client = ComputeApiClient(identity.compute_api_url, service_identity(conf))
    reporter = Reporter(identity, manager, client)
    manager.start()
    reporter.start()
    LOG.info("Agent of %s as host %s, reached at %s", identity.compute_api_url, identity.host,
             identity.agent_url)
    return wrap(agent_api.create_app(manager, auth, reporter.precacher.accept), auth)


def service_identity(conf: config.Config) -> str | Callable[[], str] | None:
    """This host's own token as a service (the image service's [glance] service_token, or a
    Keystone token of its [keystone_authtoken] user): the agent calls the compute API as it
    calls the image service, and the compute API calls agents the same way."""
    settings = ImageServiceSettings.from_config(conf)
    if settings.keystone is not None:
        from chute.auth.service_auth import token_provider
        return token_provider(dict(settings.keystone))
    return settings.service_token


def explain(conf: config.Config, service: ImageService, image_id: str) -> str:
    from chute.compute.explain import explain as explain_image
    base_dir = CacheSettings.from_config(conf).base_dir
    return explain_image(fetcher(conf, service), service, base_dir, image_id)


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
        agent = validate(conf)
        if args.show_config:
            sys.stdout.write(config.dump(conf, SCHEMA))
            return 0
        if args.command == "explain":
            print(explain(conf, image_service(conf), args.image_id))
            return 0
        secrets = [("glance", "service_token")]
        if config.url_has_password(conf.get("DEFAULT", "state_connection")):
            secrets.append(("DEFAULT", "state_connection"))
        config.check_private(conf, secrets)
        config.private_umask()  # _base, instance disks, the state database, the log
        find_front_end()
        listener = listen(conf, agent)
        prepare(conf, agent)
        virt_in_effect, fallback = check_virt(conf)
    except ConfigError as exc:
        print(f"{PROG}: {exc.message}", file=sys.stderr)
        return 1
    except ChuteError as exc:
        print(f"{PROG}: {exc.message}", file=sys.stderr)
        return 1
    chute_log.setup(agent.log_file, agent.debug)
    httpapi.install_log_filter()
    AuthSettings.from_config(conf, agent.bind_host).log_start(PROG)
    LOG.info("chute-compute listening on %s:%s, instances in %s", agent.bind_host,
             agent.bind_port, agent.instances_path)
    if fallback is not None:
        LOG.warning("%s", fallback)
    from chute.wsgi_server import serve
    front = FrontEndSettings(agent.client_socket_timeout, API_THREADS)
    try:
        serve(lambda: build_app(conf, virt_in_effect), listener, front, workers=1,
              threads=API_THREADS)
    except ChuteError as exc:
        print(f"{PROG}: {exc.message}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
