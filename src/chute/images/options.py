"""chute-api options, with Glance's names and defaults where the meaning is the same, and
the settings each component is given, built once at start-up (`ApiSettings.from_config`).

The store declares its own section (chute.stores.options); this module composes the schema.
The gunicorn master imports this module: keep its imports light.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from chute import log
from chute.auth.options import OPTIONS as AUTH_OPTIONS
from chute.auth.options import SECTIONS as AUTH_SECTIONS
from chute.auth.options import AuthSettings
from chute.config import Config, Opt, Schema
from chute.stores.options import DEFAULT_OPTIONS as STORE_DEFAULT_OPTIONS
from chute.stores.options import OPTIONS as STORE_OPTIONS
from chute.stores.options import SECTION, STORE_SECTIONS, StoreSettings


def _hash_algo(value: str) -> None:
    # Imported here: the gunicorn master loads this schema but never hashes, and the hashing
    # module (blake3, hashlib, concurrent.futures) would add 1.6 MiB of RSS to it.
    from chute.transfer.hashing import check_algorithm

    check_algorithm(value)


IMPORT_METHODS = ("glance-direct", "web-download", "copy-image")
# Offered when enabled_import_methods is not set: copy-image only where there are stores to
# copy to (it is refused without enabled_backends, as Glance refuses it).
DEFAULT_IMPORT_METHODS = ("glance-direct", "web-download")


def _import_methods(value: list[str]) -> None:
    unknown = [m for m in value if m not in IMPORT_METHODS]
    if unknown:
        raise ValueError(f"unknown import method(s) {', '.join(unknown)}; chute has "
                         f"{', '.join(IMPORT_METHODS)}")


def _ports(value: list[str]) -> None:
    for item in value:
        if not item.isdigit() or not 1 <= int(item) <= 65535:
            raise ValueError(f"{item!r} is not a port (1-65535)")


SCHEMA: Schema = {
    "DEFAULT": [
        Opt("bind_host", "str", "127.0.0.1", "Address to listen on."),
        Opt("bind_port", "int", 9292, "Port to listen on.", min=0),
        Opt("workers", "int", 2, "Number of server processes.", min=1),
        Opt("threads", "int", 8, "Threads per server process (concurrent requests each).", min=1),
        Opt("client_socket_timeout", "int", 120,
            "Seconds a client may take to send a request head, or stay silent (between two "
            "reads of an upload too), before its connection is dropped.", min=1),
        Opt("public_endpoint", "str", "",
            "Public base URL for version links (default: the request's host)."),
        Opt("show_image_direct_url", "bool", False,
            "Show the first location as 'direct_url' in image documents."),
        Opt("show_multiple_locations", "bool", False,
            "Show 'locations' (url + metadata) in image documents. A security risk on a "
            "public endpoint (OSSN-0065): prefer the service-only locations endpoint."),
        Opt("image_size_cap", "int", 1099511627776, "Largest image in bytes (413 above).", min=0),
        Opt("user_storage_quota", "str", "0",
            "Total bytes one owner may store: 0 = unlimited; suffixes KB, MB, GB, TB."),
        Opt("hashing_algorithm", "str", "sha512", "Multihash algorithm (os_hash_algo).",
            check=_hash_algo),
        Opt("limit_param_default", "int", 25, "Default page size of image lists.", min=1),
        Opt("api_limit_max", "int", 1000, "Largest page size of image lists.", min=1),
        Opt("image_property_quota", "int", 128, "Most custom properties per image (-1: no limit)."),
        Opt("image_tag_quota", "int", 128, "Most tags per image (-1: no limit)."),
        # The limits below bound what one request costs (issue 18, item 2). Glance has no
        # option for them; where Glance has a fixed limit, the default is that limit.
        Opt("image_property_value_max_length", "int", 65535,
            "Longest custom property value, in characters (400 above). Glance's schema sets "
            "no maxLength for custom values; its column is a TEXT, 65535 bytes on MySQL. "
            "Not 255: Nova's snapshots store block_device_mapping and img_signature (RSA-4096: "
            "684 characters) as properties.", min=1),
        Opt("image_metadata_max_bytes", "int", 65536,
            "Most bytes (UTF-8) of custom property names and values plus tags one image may "
            "hold (413 above): every list page that includes the image costs that much, up to "
            "api_limit_max times.", min=1),
        Opt("list_filters_max", "int", 32,
            "Most filters in one image list (each custom property, tag, column or time "
            "filter counts once; 400 above): each is evaluated for every row.", min=1),
        Opt("list_in_values_max", "int", 100,
            "Most values in one `in:` filter (400 above): list_filters_max x this many bound "
            "parameters stays far below SQLite's 32766 and PostgreSQL's 65535.", min=1),
        Opt("service_token", "str", "",
            "Token a service (chute-compute) sends as X-Auth-Token to read the service-only "
            "GET /v2/images/{id}/locations, in addition to the service role the policy "
            "asks for (fetch_image_location). Empty: the policy alone decides."),
        Opt("enabled_import_methods", "list", list(DEFAULT_IMPORT_METHODS),
            "Interoperable import methods offered (Glance's option: glance-direct, "
            "web-download, and copy-image with enabled_backends).", check=_import_methods),
        *STORE_DEFAULT_OPTIONS,
        *AUTH_OPTIONS,
        *log.OPTIONS,
    ],
    # Glance's section and defaults (glance/async_/flows/_internal_plugins): what URL a
    # web-download import may fetch. Loopback and link-local addresses are refused whatever
    # the lists say, unless the host is in allowed_hosts (chute.images.import_filter).
    "import_filtering_opts": [
        Opt("allowed_schemes", "list", ["http", "https"], "Schemes web-download may fetch."),
        Opt("disallowed_schemes", "list", [], "Schemes refused (ignored if allowed_schemes)."),
        Opt("allowed_hosts", "list", [], "Only these hosts (empty: any that passes the rest)."),
        Opt("disallowed_hosts", "list", [], "Hosts refused (ignored if allowed_hosts)."),
        Opt("allowed_ports", "list", ["80", "443"], "Ports web-download may fetch from.",
            check=_ports),
        Opt("disallowed_ports", "list", [], "Ports refused (ignored if allowed_ports).",
            check=_ports),
    ],
    **AUTH_SECTIONS,
    "database": [
        Opt("connection", "str", "",
            "SQLAlchemy URL: sqlite:///PATH (default: <datadir>/../chute-api.sqlite) or "
            "postgresql+psycopg://user:pw@host/db for several API nodes."),
    ],
    SECTION: STORE_OPTIONS,
    **STORE_SECTIONS,
    "image_format": [
        Opt("disk_formats", "list",
            ["ami", "ari", "aki", "vhd", "vhdx", "vmdk", "raw", "qcow2", "vdi", "iso", "ploop"],
            "Allowed disk_format values."),
        Opt("container_formats", "list",
            ["ami", "ari", "aki", "bare", "ovf", "ova", "docker", "compressed"],
            "Allowed container_format values."),
        Opt("require_image_format_match", "bool", True,
            "Refuse (415) uploads whose content does not match disk_format."),
    ],
}


_UNITS = {"": 1, "B": 1, "KB": 1 << 10, "MB": 1 << 20, "GB": 1 << 30, "TB": 1 << 40}


def parse_quota(raw: str) -> int:
    """`user_storage_quota` as bytes (Glance's `^\\d+((K|M|G|T)?B)?$`, binary units)."""
    match = re.fullmatch(r"\s*(\d+)\s*((?:K|M|G|T)?B)?\s*", raw or "0")
    if match is None:
        raise ValueError(f"{raw!r} is not a size (use e.g. 0, 500MB, 2GB)")
    return int(match.group(1)) * _UNITS[match.group(2) or ""]


@dataclass(frozen=True)
class ServerSettings:
    """How chute-api serves: the gunicorn side and the log."""

    bind_host: str
    bind_port: int
    workers: int
    threads: int
    client_socket_timeout: int
    log_file: str
    debug: bool


@dataclass(frozen=True)
class ServiceSettings:
    """What the image service's rules need (chute.images.service)."""

    show_direct_url: bool
    show_locations: bool
    property_quota: int
    tag_quota: int
    default_limit: int
    max_limit: int
    service_token: str
    property_value_max: int
    metadata_max_bytes: int
    filters_max: int
    in_values_max: int


@dataclass(frozen=True)
class UploadSettings:
    """What receiving image data needs (chute.images.data)."""

    size_cap: int
    quota: int  # bytes; 0: no user_storage_quota
    hashing_algorithm: str
    chunk_size: int
    require_format_match: bool


@dataclass(frozen=True)
class ImportSettings:
    """The interoperable import (chute.images.imports): methods and web-download's filter."""

    methods: tuple[str, ...]
    allowed_schemes: tuple[str, ...]
    disallowed_schemes: tuple[str, ...]
    allowed_hosts: tuple[str, ...]
    disallowed_hosts: tuple[str, ...]
    allowed_ports: tuple[int, ...]
    disallowed_ports: tuple[int, ...]


@dataclass(frozen=True)
class FormatSettings:
    """The disk and container formats the image schema allows (chute.images.schema)."""

    disk_formats: tuple[str, ...]
    container_formats: tuple[str, ...]


@dataclass(frozen=True)
class ApiSettings:
    """All of chute-api's configuration, typed; each component is handed its part."""

    server: ServerSettings
    service: ServiceSettings
    upload: UploadSettings
    formats: FormatSettings
    store: StoreSettings
    database_connection: str  # "": SQLite beside the datadir
    public_endpoint: str
    auth: AuthSettings
    imports: ImportSettings

    @classmethod
    def from_config(cls, conf: Config) -> ApiSettings:
        """Raises ConfigError for what the loader cannot check alone (the quota's syntax)."""
        d, formats = conf.typed("DEFAULT"), conf.typed("image_format")
        store = StoreSettings.from_config(conf)
        try:
            quota = parse_quota(d.string("user_storage_quota"))
        except ValueError as exc:
            raise conf.fail("DEFAULT", "user_storage_quota", str(exc)) from None
        return cls(
            server=ServerSettings(
                d.string("bind_host"), d.integer("bind_port"), d.integer("workers"),
                d.integer("threads"), d.integer("client_socket_timeout"),
                d.string("log_file"), d.boolean("debug")),
            service=ServiceSettings(
                d.boolean("show_image_direct_url"), d.boolean("show_multiple_locations"),
                d.integer("image_property_quota"), d.integer("image_tag_quota"),
                d.integer("limit_param_default"), d.integer("api_limit_max"),
                d.string("service_token"), d.integer("image_property_value_max_length"),
                d.integer("image_metadata_max_bytes"), d.integer("list_filters_max"),
                d.integer("list_in_values_max")),
            upload=UploadSettings(
                d.integer("image_size_cap"), quota, d.string("hashing_algorithm"),
                store.chunk_size, formats.boolean("require_image_format_match")),
            formats=FormatSettings(formats.strings("disk_formats"),
                                   formats.strings("container_formats")),
            store=store,
            database_connection=conf.typed("database").string("connection"),
            public_endpoint=d.string("public_endpoint"),
            auth=AuthSettings.from_config(conf, d.string("bind_host")),
            imports=_import_settings(conf))


def _import_settings(conf: Config) -> ImportSettings:
    f = conf.typed("import_filtering_opts")
    d = conf.typed("DEFAULT")
    methods = d.strings("enabled_import_methods")
    several_stores = bool(d.strings("enabled_backends"))
    if "copy-image" in methods and not several_stores:
        raise conf.fail("DEFAULT", "enabled_import_methods", "copy-image copies an image to "
                        "more stores: it needs [DEFAULT] enabled_backends")
    if several_stores and methods == DEFAULT_IMPORT_METHODS:
        methods = IMPORT_METHODS  # Glance's default list, copy-image included
    return ImportSettings(
        methods,
        f.strings("allowed_schemes"), f.strings("disallowed_schemes"),
        f.strings("allowed_hosts"), f.strings("disallowed_hosts"),
        tuple(int(p) for p in f.strings("allowed_ports")),
        tuple(int(p) for p in f.strings("disallowed_ports")))
