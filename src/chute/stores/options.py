"""`[glance_store]`: the store's options (glance_store's names and defaults) and its settings.

Declared here, next to the store that reads them; chute.images.options puts this section into
the chute-api schema. Imported by the gunicorn master: nothing heavy may be imported here.
"""

from __future__ import annotations

from dataclasses import dataclass

from chute.config import Config, Opt

SECTION = "glance_store"
DEFAULT_DATADIR = "/var/lib/chute/images"


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
    # what a busy worker adds to its RSS. 1 MiB, measured on 1 GiB raw PUTs with O_DIRECT
    # store writes (2 x 4 alternated rounds): 476/463 MiB/s and 3.88/3.92 server CPU-s,
    # against 472/502 MiB/s and 3.88/3.61 CPU-s for 2 MiB, the same within the noise;
    # peak RSS of the upload 130 vs 133-134 MiB. (Before O_DIRECT, 1 MiB had cost +6 %
    # CPU over 2 MiB, and 4 MiB was no cheaper than 2.)
    Opt("filesystem_store_chunk_size", "int", 1 << 20, "Read/write chunk size in bytes.",
        min=4096),
]


@dataclass(frozen=True)
class StoreSettings:
    """`[glance_store]` as typed values. Their checks against the filesystem (directories,
    the metadata file) happen when the store is opened, see FilesystemStore.open."""

    datadir: str
    datadirs: tuple[str, ...]
    metadata_file: str
    file_perm: int  # octal digits as written, e.g. 644; 0: 0640 masked by the umask
    chunk_size: int

    @classmethod
    def from_config(cls, conf: Config) -> StoreSettings:
        s = conf.typed(SECTION)
        return cls(s.string("filesystem_store_datadir"), s.strings("filesystem_store_datadirs"),
                   s.string("filesystem_store_metadata_file"),
                   s.integer("filesystem_store_file_perm"),
                   s.integer("filesystem_store_chunk_size"))
