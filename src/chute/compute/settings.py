"""chute-compute's settings: the parsed config turned once, at start-up, into one frozen object
per component, so that no component reads the config (the options are declared in options.py).

Each `from_config` is the only place its options are read; rules between options that name the
option on failure (a ConfigError, one line) are checked here too.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, ip_address
from urllib.parse import urlsplit

from chute.compute import db
from chute.compute.fetch.shared_fs import Filesystem
from chute.compute.virt import VirtSettings
from chute.config import Config


@dataclass(frozen=True)
class AgentSettings:
    """[DEFAULT]: what the process itself needs (listening, logging, its own state)."""

    bind_host: str
    bind_port: int
    instances_path: str
    state_url: str  # state_connection, or the SQLite file under instances_path
    compute_driver: str
    log_file: str | None
    debug: bool
    client_socket_timeout: int  # [wsgi]

    @classmethod
    def from_config(cls, conf: Config) -> AgentSettings:
        d = conf.section("DEFAULT")
        state_url = d["state_connection"] or db.default_url(d["instances_path"])
        return cls(d["bind_host"], d["bind_port"], d["instances_path"], state_url,
                   d["compute_driver"], d["log_file"] or None, d["debug"],
                   conf.get("wsgi", "client_socket_timeout"))


@dataclass(frozen=True)
class AgentIdentity:
    """An agent of a compute API ([compute_api] url set): who it is and how it is reached,
    and what it says of its host that no component knows (zone, filesystems it mounts)."""

    host: str  # [DEFAULT] host (Nova's), default the hostname
    compute_api_url: str
    agent_url: str  # [compute_api] agent_url, default http://bind_host:bind_port
    report_interval: int  # [DEFAULT] report_interval (Nova's)
    availability_zone: str
    filesystem_ids: frozenset[str]
    base_dir: str

    @classmethod
    def from_config(cls, conf: Config) -> AgentIdentity | None:
        """None for a standalone chute-compute (no [compute_api] url)."""
        d, api = conf.section("DEFAULT"), conf.section("compute_api")
        if not api["url"]:
            return None
        check_http_url(conf, "compute_api", "url", api["url"])
        agent_url = api["agent_url"]
        if agent_url:
            check_http_url(conf, "compute_api", "agent_url", agent_url)
        else:
            bind_host = d["bind_host"]
            if bind_host in ("0.0.0.0", "::", ""):
                raise conf.fail("compute_api", "agent_url",
                                f"must be set: bind_host {bind_host!r} is not an address the "
                                "compute API can reach")
            shown = f"[{bind_host}]" if _is_v6(bind_host) else bind_host
            agent_url = f"http://{shown}:{d['bind_port']}"
        host = d["host"] or socket.gethostname()
        if "/" in host or not host.strip():
            raise conf.fail("DEFAULT", "host", "must be a host name without '/'")
        return cls(host, api["url"].rstrip("/"), agent_url.rstrip("/"), d["report_interval"],
                   d["default_availability_zone"], frozenset(filesystems(conf)),
                   base_dir(d["instances_path"]))


def _is_v6(host: str) -> bool:
    try:
        return ip_address(host).version == 6
    except ValueError:
        return False


def check_http_url(conf: Config, section: str, option: str, url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise conf.fail(section, option, f"{url!r} is not an http(s) URL")


@dataclass(frozen=True)
class ImageServiceSettings:
    """[glance] and [image_file_url]: how this host reaches the image service and its files."""

    api_servers: tuple[str, ...]
    service_token: str | None
    num_retries: int
    verify_digest: str
    allowed_direct_url_schemes: frozenset[str]
    filesystems: Mapping[str, Filesystem]  # by filesystem id
    # With auth_strategy = keystone and no service_token: the [keystone_authtoken] service
    # user this host logs in as to call the image service as itself (chute.auth.service_auth).
    keystone: Mapping[str, str] | None = None

    @classmethod
    def from_config(cls, conf: Config) -> ImageServiceSettings:
        g = conf.section("glance")
        if not g["api_servers"]:
            raise conf.fail("glance", "api_servers", "needs at least one image service endpoint")
        keystone = None
        if conf.get("DEFAULT", "auth_strategy") == "keystone" and not g["service_token"]:
            keystone = {k: v for k, v in conf.section("keystone_authtoken").items() if v}
        return cls(tuple(g["api_servers"]), g["service_token"] or None, g["num_retries"],
                   g["verify_digest"], frozenset(g["allowed_direct_url_schemes"]),
                   filesystems(conf), keystone)


@dataclass(frozen=True)
class CacheSettings:
    """What the image cache under `<instances_path>/_base` needs."""

    base_dir: str
    force_raw_images: bool
    remove_unused_base_images: bool
    min_unused_age_seconds: int  # remove_unused_original_minimum_age_seconds

    @classmethod
    def from_config(cls, conf: Config) -> CacheSettings:
        d, cache = conf.section("DEFAULT"), conf.section("image_cache")
        return cls(base_dir(d["instances_path"]), d["force_raw_images"],
                   cache["remove_unused_base_images"],
                   cache["remove_unused_original_minimum_age_seconds"])


@dataclass(frozen=True)
class ManagerSettings:
    """What the lifecycle needs: where instance disks go, their layout, periods, limits."""

    instances_path: str
    images_type: str  # [libvirt] images_type: qcow2 overlay or raw copy
    cleanup_interval: int  # [image_cache] manager_interval; 0: never
    availability_zone: str = "nova"  # [DEFAULT] default_availability_zone
    force_config_drive: bool = False
    shutdown_timeout: int = 60
    sync_power_state_interval: int = 600  # 0: never
    cpu_allocation_ratio: float = 4.0
    ram_allocation_ratio: float = 1.0
    quota: tuple[tuple[str, int], ...] = ()  # [quota] instances, cores, ram (Nova's)
    # False for an agent: the compute API resends the builds it still places here, so a
    # build it moved elsewhere while this host was away is never run a second time.
    resume_builds: bool = True

    @classmethod
    def from_config(cls, conf: Config) -> ManagerSettings:
        d = conf.section("DEFAULT")
        zone = d["default_availability_zone"]
        if not zone.strip() or ":" in zone:
            raise conf.fail("DEFAULT", "default_availability_zone",
                            "must be a non-empty zone name without ':'")
        return cls(d["instances_path"], conf.get("libvirt", "images_type"),
                   conf.get("image_cache", "manager_interval"), zone, d["force_config_drive"],
                   d["shutdown_timeout"], d["sync_power_state_interval"],
                   d["cpu_allocation_ratio"], d["ram_allocation_ratio"],
                   tuple(conf.section("quota").items()),
                   resume_builds=not conf.get("compute_api", "url"))


# QEMU's user-mode network (its documentation, "Network options"): the same for every guest.
SLIRP_NETWORK = IPv4Network("10.0.2.0/24")
SLIRP_GATEWAY = IPv4Address("10.0.2.2")
SLIRP_DNS = IPv4Address("10.0.2.3")


@dataclass(frozen=True)
class NetworkSettings:
    """[DEFAULT] network_mode, network_label and nova-network's flat networking options."""

    mode: str
    label: str
    bridge: str | None  # flat_network_bridge (bridge mode)
    fixed_range: IPv4Network
    gateway: IPv4Address
    dns: tuple[IPv4Address, ...]

    @classmethod
    def from_config(cls, conf: Config) -> NetworkSettings:
        d = conf.section("DEFAULT")
        if d["network_mode"] == "user":
            return cls("user", d["network_label"], None, SLIRP_NETWORK, SLIRP_GATEWAY,
                       (SLIRP_DNS,))
        bridge = d["flat_network_bridge"]
        if not bridge:
            raise conf.fail("DEFAULT", "flat_network_bridge",
                            "must name an existing Linux bridge when network_mode = bridge")
        if not d["fixed_range"]:
            raise conf.fail("DEFAULT", "fixed_range",
                            "must be an IPv4 CIDR (e.g. 192.0.2.0/24) when network_mode = bridge")
        try:
            fixed = IPv4Network(d["fixed_range"])
        except ValueError as exc:
            raise conf.fail("DEFAULT", "fixed_range", f"is not an IPv4 CIDR: {exc}") from None
        if fixed.num_addresses < 4:
            raise conf.fail("DEFAULT", "fixed_range", "needs room for a gateway and a guest "
                            "(a /30 at least)")
        gateway = _address(conf, "gateway", d["gateway"]) if d["gateway"] else \
            next(fixed.hosts())
        if gateway not in fixed:
            raise conf.fail("DEFAULT", "gateway", f"{gateway} is not in fixed_range {fixed}")
        dns = tuple(_address(conf, "flat_network_dns", text) for text in d["flat_network_dns"])
        return cls("bridge", d["network_label"], bridge, fixed, gateway, dns)

    def check_bridge(self, conf: Config) -> None:
        """A guest's tap can only join a bridge that exists: say so at start, not per build."""
        if self.bridge is not None and not os.path.isdir(f"/sys/class/net/{self.bridge}/bridge"):
            raise conf.fail("DEFAULT", "flat_network_bridge",
                            f"{self.bridge!r} is not a Linux bridge on this host")


def _address(conf: Config, option: str, text: str) -> IPv4Address:
    try:
        return IPv4Address(text)
    except ValueError as exc:
        raise conf.fail("DEFAULT", option, f"is not an IPv4 address: {exc}") from None


def virt_settings(conf: Config) -> VirtSettings:
    """The driver's settings as configured (main.py may then fall back from kvm to qemu)."""
    d, lv = conf.section("DEFAULT"), conf.section("libvirt")
    return VirtSettings(d["compute_driver"], d["instances_path"], lv["virt_type"],
                        lv["connection_uri"], lv["allow_virt_type_fallback"],
                        lv["wait_soft_reboot_seconds"], conf.get("fake", "spawn_seconds"))


def filesystems(conf: Config) -> dict[str, Filesystem]:
    """Configured filesystems by id; a listed name without its section or id is a ConfigError."""
    sections = conf.templated("image_file_url")
    found: dict[str, Filesystem] = {}
    for name in conf.get("image_file_url", "filesystems"):
        section = sections.get(name)
        where = f"image_file_url:{name}"
        if section is None:
            raise conf.fail("image_file_url", "filesystems", f"names [{where}], which is missing")
        for option in ("id", "mountpoint"):
            if not section[option]:
                raise conf.fail(where, option, "must be set")
        if not os.path.isabs(section["mountpoint"]):
            raise conf.fail(where, "mountpoint", "must be an absolute path")
        if section["id"] in found:
            raise conf.fail(where, "id", f"{section['id']!r} is also the id of "
                            f"[image_file_url:{found[section['id']].name}]")
        found[section["id"]] = Filesystem(name, section["id"], section["mountpoint"])
    return found


def base_dir(instances_path: str) -> str:
    """The image cache's directory: Nova's `_base`, beside the instance directories."""
    return os.path.join(instances_path, "_base")

