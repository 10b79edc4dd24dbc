"""The config drive: how a guest learns its name, keys, metadata and user data without a
metadata service (chute has none), in the layout cloud-init and Glean read.

`<instance dir>/disk.config`: ISO 9660 with Rock Ridge and Joliet names, volume label
`config-2`, the files of Nova's `openstack/latest/` (nova/api/metadata/base.py):
`meta_data.json`, `user_data` (when given), `network_data.json` (the server's port with its
static address, compute/network.py; empty for networks "none"), `vendor_data.json` and
`vendor_data2.json` (empty, as Nova's default vendordata providers give). Built with pycdlib, a
library made for writing ISO images, as genisoimage does for Nova (`-J -r -V config-2`).
Contract with the virt drivers: a `disk.config` present at spawn is attached read-only (the
libvirt driver); the fake driver ignores it.

Written to a temporary name, fsynced, renamed: a spawn never sees half a drive. Mode 0600:
it holds user data and the admin password.
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pycdlib

LABEL = "config-2"
FILENAME = "disk.config"
_HOSTNAME_BAD = re.compile(r"[^a-z0-9-]+")


@dataclass(frozen=True)
class DriveContent:
    """What the guest is told about itself."""

    uuid: str
    name: str
    availability_zone: str
    metadata: dict[str, str] = field(default_factory=dict)
    public_keys: dict[str, str] = field(default_factory=dict)  # key name -> OpenSSH key
    user_data: bytes | None = None
    admin_pass: str | None = None
    project_id: str | None = None
    network_data: dict[str, Any] | None = None  # network_data.json; None: no network


def hostname(name: str) -> str:
    """Nova's sanitize_hostname: lower case, letters, digits and dashes, at most 63."""
    text = _HOSTNAME_BAD.sub("-", name.lower().replace(" ", "-").replace("_", "-"))
    return text.strip("-.")[:63] or "server"


def meta_data(content: DriveContent) -> dict[str, object]:
    doc: dict[str, object] = {
        "uuid": content.uuid, "name": content.name, "hostname": hostname(content.name),
        "launch_index": 0, "availability_zone": content.availability_zone,
        "meta": dict(content.metadata), "public_keys": dict(content.public_keys),
        "keys": [{"name": name, "type": "ssh", "data": key}
                 for name, key in content.public_keys.items()],
        "devices": [], "random_seed": base64.b64encode(os.urandom(512)).decode(),
    }
    if content.project_id:
        doc["project_id"] = content.project_id
    if content.admin_pass is not None:
        doc["admin_pass"] = content.admin_pass
    return doc


def files(content: DriveContent) -> dict[str, bytes]:
    """Path on the drive -> bytes."""
    def dump(doc: object) -> bytes:
        return json.dumps(doc).encode()

    found = {
        "openstack/latest/meta_data.json": dump(meta_data(content)),
        "openstack/latest/network_data.json": dump(
            content.network_data or {"links": [], "networks": [], "services": []}),
        "openstack/latest/vendor_data.json": dump({}),
        "openstack/latest/vendor_data2.json": dump({}),
    }
    if content.user_data is not None:
        found["openstack/latest/user_data"] = content.user_data
    return found


def _iso_name(part: str, is_file: bool) -> str:
    """An ISO 9660 level-4 name for one path component (Rock Ridge keeps the real one)."""
    return part.upper().replace("-", "_") + (";1" if is_file else "")


def write(instance_dir: Path, content: DriveContent) -> Path:
    """Build `<instance_dir>/disk.config`; returns its path."""
    iso = pycdlib.PyCdlib()
    iso.new(interchange_level=4, joliet=3, rock_ridge="1.09", vol_ident=LABEL)
    made: set[str] = set()
    for path, data in sorted(files(content).items()):
        parts = path.split("/")
        for depth in range(1, len(parts)):
            directory = "/".join(parts[:depth])
            if directory not in made:
                iso.add_directory("/" + "/".join(_iso_name(p, False) for p in parts[:depth]),
                                  rr_name=parts[depth - 1], joliet_path="/" + directory)
                made.add(directory)
        iso.add_fp(io.BytesIO(data), len(data),
                   "/" + "/".join(_iso_name(p, i == len(parts) - 1)
                                  for i, p in enumerate(parts)),
                   rr_name=parts[-1], joliet_path="/" + path)
    target = instance_dir / FILENAME
    partial = instance_dir / f".{FILENAME}.partial"
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        iso.write_fp(out)
        out.flush()
        os.fsync(out.fileno())
    iso.close()
    os.replace(partial, target)
    return target
