"""chute-compute's settings: the parsed config turned once, at start-up, into one frozen object
per component, so that no component reads the config (the options are declared in options.py).

Each `from_config` is the only place its options are read; rules between options that name the
option on failure (a ConfigError, one line) are checked here too.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

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
                   tuple(conf.section("quota").items()))


def virt_settings(conf: Config) -> VirtSettings:
    """The driver's settings as configured (main.py may then fall back from kvm to qemu)."""
    d, lv = conf.section("DEFAULT"), conf.section("libvirt")
    return VirtSettings(d["compute_driver"], d["instances_path"], lv["virt_type"],
                        lv["connection_uri"], lv["allow_virt_type_fallback"],
                        lv["wait_soft_reboot_seconds"])


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

