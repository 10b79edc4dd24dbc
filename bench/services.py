"""chute's own servers for the benchmarks: chute-api and chute-compute on free loopback ports.

Configured like `chute up` (chute.allinone): the store's metadata id and the compute host's
filesystem id match, so a boot copies through the filesystem - unless the compute host is
started with `direct=False`, which leaves `file` out of allowed_direct_url_schemes and so
measures chute's own HTTP fetch of the same image.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from bench.clients import script
from bench.procs import Service, free_port

FS_ID = "bench-shared-fs"


@dataclass
class ChuteSite:
    """One chute-api with its store under `root/store`, and the compute hosts attached to it."""

    root: Path
    api: Service
    computes: dict[str, Service] = field(default_factory=dict)

    @property
    def store(self) -> Path:
        return self.root / "store"

    def compute(self, direct: bool) -> Service:
        """The compute host that fetches through the filesystem (direct) or over HTTP."""
        name = "direct" if direct else "http"
        if name not in self.computes:
            self.computes[name] = start_compute(self, name, direct)
        return self.computes[name]

    def instances(self, direct: bool) -> Path:
        return self.root / f"compute-{'direct' if direct else 'http'}" / "instances"

    def stop(self) -> None:
        for service in self.computes.values():
            service.stop()
        self.computes.clear()
        self.api.stop()


def start_api(root: Path, workers: int = 2, extra: str = "") -> ChuteSite:
    """`extra`: more [DEFAULT] lines, then sections (auth_strategy and its own)."""
    images = root / "store" / "images"
    images.mkdir(parents=True, exist_ok=True)
    metadata = root / "store-metadata.json"
    metadata.write_text(json.dumps({"id": FS_ID, "mountpoint": str(root / "store")}))
    port = free_port()
    conf = root / "chute-api.conf"
    conf.write_text(f"""\
[DEFAULT]
bind_host = 127.0.0.1
bind_port = {port}
workers = {workers}
show_multiple_locations = true
show_image_direct_url = true
log_file = {root / 'chute-api.log'}
{extra}
[database]
connection = sqlite:///{root / 'chute-api.sqlite'}

[glance_store]
filesystem_store_datadir = {images}
filesystem_store_metadata_file = {metadata}
""")
    conf.chmod(0o600)  # it may hold a secret (a token, a Keystone password)
    api = Service("chute-api", [script("chute-api"), "--config-file", str(conf)],
                  root / "chute-api.out", port, app_log=root / "chute-api.log")
    api.start("/versions")
    return ChuteSite(root, api)


def start_compute(site: ChuteSite, name: str, direct: bool, extra: str = "",
                  glance: str = "") -> Service:
    """`extra`: more [DEFAULT] lines, then sections (the libvirt driver's); `glance`: more
    [glance] lines (a service_token)."""
    home = site.root / f"compute-{name}"
    instances = home / "instances"
    instances.mkdir(parents=True, exist_ok=True)
    port = free_port()
    conf = home / "chute-compute.conf"
    conf.write_text(f"""\
[DEFAULT]
bind_host = 127.0.0.1
bind_port = {port}
instances_path = {instances}
log_file = {home / 'chute-compute.log'}
{extra}
[glance]
api_servers = {site.api.url}
allowed_direct_url_schemes = {'file' if direct else ''}
{glance}

[image_file_url]
filesystems = shared

[image_file_url:shared]
id = {FS_ID}
mountpoint = {site.store}

[image_cache]
manager_interval = 0
""")
    conf.chmod(0o600)  # it may hold a secret (a service token, a Keystone password)
    service = Service(f"chute-compute ({name})",
                      [script("chute-compute"), "--config-file", str(conf)],
                      home / "chute-compute.out", port, app_log=home / "chute-compute.log")
    return service.start("/")
