"""chute-api options, with Glance's names and defaults where the meaning is the same."""

from __future__ import annotations

from chute.config import Opt, Schema


def _octal_perm(value: int) -> None:
    if value > 0 and not (int(str(value), 8) & 0o400):
        raise ValueError("must grant owner read (e.g. 640), as in Glance")


def _hash_algo(value: str) -> None:
    # Imported here: the gunicorn master loads this schema but never hashes, and the hashing
    # module (blake3, hashlib, concurrent.futures) would add 1.6 MiB of RSS to it.
    from chute.transfer.hashing import check_algorithm

    check_algorithm(value)


SCHEMA: Schema = {
    "DEFAULT": [
        Opt("bind_host", "str", "127.0.0.1", "Address to listen on."),
        Opt("bind_port", "int", 9292, "Port to listen on.", min=0),
        Opt("workers", "int", 2, "Number of server processes.", min=1),
        Opt("threads", "int", 8, "Threads per server process (concurrent requests each).", min=1),
        Opt("client_socket_timeout", "int", 120,
            "Seconds a stalled client may hold a worker before it is dropped.", min=1),
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
        Opt("service_token", "str", "",
            "Token a service (chute-compute) sends as X-Auth-Token to read the service-only "
            "GET /v2/images/{id}/locations. Empty: that endpoint is open to every caller."),
        Opt("log_file", "str", "", "Log to this file instead of stderr."),
        Opt("debug", "bool", False, "Log at DEBUG level."),
    ],
    "database": [
        Opt("connection", "str", "",
            "SQLAlchemy URL: sqlite:///PATH (default: <datadir>/../chute-api.sqlite) or "
            "postgresql+psycopg://user:pw@host/db for several API nodes."),
    ],
    "glance_store": [
        Opt("filesystem_store_datadir", "str", "/var/lib/chute/images",
            "Directory holding image files."),
        Opt("filesystem_store_datadirs", "list", [],
            "Several directories as path:priority; most free space within the highest priority "
            "wins. Set filesystem_store_datadir to empty to use this."),
        Opt("filesystem_store_metadata_file", "str", "",
            "JSON file: one {id, mountpoint} object or a list of them, attached to each new "
            "location whose file lies under the mountpoint."),
        Opt("filesystem_store_file_perm", "int", 0,
            "Octal permission digits for new image files (e.g. 640); 0 leaves the umask.",
            check=_octal_perm),
        # An upload holds chute.images.upload.RING (3) chunks, so the chunk size is most of
        # what a busy worker adds to its RSS. 1 MiB, measured on 1 GiB raw PUTs with O_DIRECT
        # store writes (2 x 4 alternated rounds): 476/463 MiB/s and 3.88/3.92 server CPU-s,
        # against 472/502 MiB/s and 3.88/3.61 CPU-s for 2 MiB, the same within the noise;
        # peak RSS of the upload 130 vs 133-134 MiB. (Before O_DIRECT, 1 MiB had cost +6 %
        # CPU over 2 MiB, and 4 MiB was no cheaper than 2.)
        Opt("filesystem_store_chunk_size", "int", 1 << 20, "Read/write chunk size in bytes.",
            min=4096),
    ],
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
