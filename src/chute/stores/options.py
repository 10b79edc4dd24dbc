"""`[glance_store]`: the store's options (glance_store's names and defaults) and its settings.

Declared here, next to the store that reads them; chute.images.options puts this section into
the chute-api schema. Imported by the gunicorn master: nothing heavy may be imported here.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from chute.config import ANY_SECTION, Config, Opt
from chute.errors import ConfigError

SECTION = "glance_store"
DEFAULT_DATADIR = "/var/lib/chute/images"
STORE_TYPES = ("file",)  # what an `enabled_backends` entry may name after the colon
RESERVED_PREFIX = "os_glance_"  # Glance's own stores (staging, tasks): never a user's store


def _octal_perm(value: int) -> None:
    if value > 0 and not (int(str(value), 8) & 0o400):
        raise ValueError("must grant owner read (e.g. 640), as in Glance")


OPTIONS: list[Opt] = [
    Opt("filesystem_store_datadir", "str", DEFAULT_DATADIR, "Directory holding image files."),
    Opt("filesystem_store_datadirs", "list", [],
        "Several directories as path:priority; most free space within the highest priority "
        "wins. Set filesystem_store_datadir to empty to use this."),
    Opt("filesystem_store_metadata_file", "str", "",
        "JSON file: one {id, mountpoint} object or a list of them, attached to each new "
        "location whose file lies under the mountpoint."),
    Opt("filesystem_store_file_perm", "int", 0,
        "Octal permission digits for new image files (e.g. 644); 0: 0640, less where the "
        "umask is stricter.",
        check=_octal_perm),
    # An upload holds chute.images.upload.RING (3) chunks, so the chunk size is most of
    # what a busy worker adds to its RSS. 2 MiB: per 1 GiB raw PUT, server + HAProxy
    # CPU-seconds, medians of 10-16 runs alternated between sizes (2026-12-07, 2 cores
    # shared, load 6-10): 1 MiB 4.0, 2 MiB 3.57, 4 MiB 3.65; per thread (CPU-s/GiB, 1 -> 2
    # MiB) the receiving thread 0.32-0.58 -> 0.30-0.39, HAProxy 0.23-0.36 -> 0.21-0.31, the
    # O_DIRECT writer 0.11-0.21 -> under 0.1 (fewer, larger writes), blake3-blocks 0.15-0.22
    # -> 0.15-0.20, MD5's involuntary context switches 1.4-2.3k -> 1.1-1.6k. Peak RSS of the
    # worker during the upload 53 MiB (1 MiB), 56 (2 MiB), 62 (4 MiB). (An earlier set of
    # 2 x 4 rounds had found 3.88/3.92 CPU-s for 1 MiB against 3.88/3.61 for 2 MiB and
    # kept 1 MiB as "the same within the noise".)
    Opt("filesystem_store_chunk_size", "int", 2 << 20, "Read/write chunk size in bytes.",
        min=4096),
    Opt("default_backend", "str", "",
        "With [DEFAULT] enabled_backends: the store new images go to unless the request "
        "names one (Glance's option; required then)."),
]


def _backends(value: list[str]) -> None:
    seen: set[str] = set()
    for item in value:
        store_id, sep, kind = item.partition(":")
        store_id, kind = store_id.strip(), kind.strip()
        if not sep or not store_id:
            raise ValueError(f"{item!r} is not STORE_ID:TYPE (e.g. rack1:file)")
        if kind not in STORE_TYPES:
            raise ValueError(f"store {store_id!r} has type {kind!r}; chute has "
                             f"{', '.join(STORE_TYPES)}")
        if store_id.startswith(RESERVED_PREFIX):
            raise ValueError(f"store id {store_id!r}: the prefix {RESERVED_PREFIX} is "
                             "reserved for Glance's own stores")
        if store_id in seen:
            raise ValueError(f"store {store_id!r} is listed twice")
        seen.add(store_id)


# `[DEFAULT]` options of the stores (chute.images.options adds them to its DEFAULT section).
DEFAULT_OPTIONS: list[Opt] = [
    Opt("enabled_backends", "list", [],
        "Several stores, as STORE_ID:file (Glance's multi-store): each has its own section "
        "[STORE_ID]; [glance_store] default_backend names the default. Empty: the one "
        "store of [glance_store].", check=_backends),
]

# One section per store of `enabled_backends`, named by its id (Glance's layout).
BACKEND_OPTIONS: list[Opt] = [
    Opt("filesystem_store_datadir", "str", "", "Directory holding this store's image files."),
    Opt("filesystem_store_metadata_file", "str", "",
        "JSON file: this store's filesystem {id, mountpoint} (or a list of them), recorded "
        "in each of its locations with the store's id."),
    Opt("filesystem_store_file_perm", "int", 0,
        "Octal permission digits for new image files (e.g. 644); 0: 0640.", check=_octal_perm),
    Opt("store_description", "str", "", "Shown by GET /v2/info/stores."),
    Opt("weight", "int", 0, "Store weight (Glance's): locations of heavier stores first."),
]
STORE_SECTIONS = {ANY_SECTION: BACKEND_OPTIONS}


@dataclass(frozen=True)
class BackendSettings:
    """One store of `enabled_backends`: its section, typed."""

    id: str
    datadir: str
    metadata_file: str
    file_perm: int
    description: str
    weight: int


@dataclass(frozen=True)
class StoreSettings:
    """`[glance_store]` as typed values. Their checks against the filesystem (directories,
    the metadata file) happen when the store is opened, see FilesystemStore.open."""

    datadir: str
    datadirs: tuple[str, ...]
    metadata_file: str
    file_perm: int  # octal digits as written, e.g. 644; 0: 0640 masked by the umask
    chunk_size: int
    backends: tuple[BackendSettings, ...] = ()  # empty: the one store above
    default_backend: str = ""

    @classmethod
    def from_config(cls, conf: Config) -> StoreSettings:
        """Raises ConfigError for a multi-store layout that cannot work, naming the option."""
        s = conf.typed(SECTION)
        backends = _backend_settings(conf)
        default = s.string("default_backend")
        if backends:
            ids = [b.id for b in backends]
            if not default:
                raise conf.fail(SECTION, "default_backend", "must be set when [DEFAULT] "
                                "enabled_backends is (one of " + ", ".join(ids) + ")")
            if default not in ids:
                raise conf.fail(SECTION, "default_backend", f"{default!r} is not in [DEFAULT] "
                                "enabled_backends (" + ", ".join(ids) + ")")
            if s.strings("filesystem_store_datadirs") or s.string(
                    "filesystem_store_datadir") not in ("", DEFAULT_DATADIR):
                raise conf.fail(SECTION, "filesystem_store_datadir",
                                "applies to the single store; with [DEFAULT] enabled_backends "
                                "set filesystem_store_datadir in each store's section")
            if s.string("filesystem_store_metadata_file"):
                raise conf.fail(SECTION, "filesystem_store_metadata_file",
                                "applies to the single store; with [DEFAULT] enabled_backends "
                                "set it in each store's section")
        elif default:
            raise conf.fail(SECTION, "default_backend",
                            "is set but [DEFAULT] enabled_backends is empty")
        return cls(s.string("filesystem_store_datadir"), s.strings("filesystem_store_datadirs"),
                   s.string("filesystem_store_metadata_file"),
                   s.integer("filesystem_store_file_perm"),
                   s.integer("filesystem_store_chunk_size"), backends, default)


def _backend_settings(conf: Config) -> tuple[BackendSettings, ...]:
    """The stores of `enabled_backends`, each from its section; a section no store names, a
    store without a section or a datadir, two stores on one datadir: ConfigError."""
    ids = [item.partition(":")[0].strip()
           for item in conf.typed("DEFAULT").strings("enabled_backends")]
    sections = conf.templated(ANY_SECTION)
    for name in sections:
        if name not in ids:
            raise ConfigError(conf.path or "<defaults>", name, None,
                              "unknown section (no store of [DEFAULT] enabled_backends has "
                              "this id)")
    found: list[BackendSettings] = []
    datadirs: dict[str, str] = {}
    for store_id in ids:
        if store_id not in sections:
            raise conf.fail("DEFAULT", "enabled_backends", f"store {store_id!r} has no "
                            f"[{store_id}] section with its filesystem_store_datadir")
        values = sections[store_id]
        datadir = str(values["filesystem_store_datadir"])
        if not datadir:
            raise conf.fail(store_id, "filesystem_store_datadir", "must be set")
        key = os.path.normpath(os.path.abspath(datadir))
        if key in datadirs:
            raise conf.fail(store_id, "filesystem_store_datadir",
                            f"{datadir} is already the datadir of store {datadirs[key]!r}")
        datadirs[key] = store_id
        found.append(BackendSettings(store_id, datadir,
                                     str(values["filesystem_store_metadata_file"]),
                                     int(values["filesystem_store_file_perm"]),
                                     str(values["store_description"]), int(values["weight"])))
    return tuple(found)
