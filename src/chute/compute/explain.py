"""`chute-compute explain IMAGE_ID`: would this host copy the image directly, and if not, why?

Operators of Nova's file handler had to answer that from tracebacks
(docs/architecture.md#nova-explain). This walks the very code a fetch runs (Fetcher.resolve,
open_source, the size check) without copying, and probes which copy primitive the kernel allows
between the image's filesystem and `_base` with a clone of the file (metadata only) or a
one-byte copy_file_range.
"""

from __future__ import annotations

import os

from chute.client.image import Image, Location
from chute.compute.fetch import Fetcher, candidates, shared_fs
from chute.compute.fetch.candidates import filesystem_id
from chute.compute.image_service import ImageService
from chute.errors import ChuteError, DirectPathUnavailable
from chute.transfer import copy


def explain(fetcher: Fetcher, client: ImageService, base_dir: str, image_id: str) -> str:
    """A report, one block per candidate location, ending with what a fetch would do."""
    image = client.get(image_id)
    lines = [f"Image {image_id} ({image.status}, {image.size} bytes, "
             f"disk_format {image.disk_format})",
             "allowed_direct_url_schemes: "
             + (", ".join(sorted(fetcher.schemes)) or "none (direct path disabled)"),
             "filesystems: " + (", ".join(f"{fs.name} (id {fs.id}, mountpoint {fs.mountpoint})"
                                          for fs in fetcher.filesystems.values()) or "none")]
    found = candidates(image, client, fetcher.filesystems)
    if not found:
        lines.append("No locations: the image service shows neither locations nor direct_url.")
    chosen = None
    for number, location in enumerate(found, 1):
        lines.append(f"\n[{number}] {location.url}")
        lines.append(f"    metadata: {location.metadata or 'none'}")
        lines.append("    " + _where(fetcher, location))
        verdict, path = _judge(fetcher, location, image, base_dir)
        lines.extend("    " + line for line in verdict)
        if path and chosen is None:
            chosen = path
    lines.append("")
    lines.append(f"A fetch would copy {chosen} directly." if chosen else
                 "A fetch would download over HTTP (GET /v2/images/{id}/file).")
    return "\n".join(lines) + "\n"


def _where(fetcher: Fetcher, location: Location) -> str:
    """Which store and filesystem the location is on, and whether this host mounts it (the
    locations on a mounted filesystem are tried first)."""
    store = location.metadata.get("store")
    prefix = f"store {store}, " if isinstance(store, str) and store else ""
    fs_id = filesystem_id(location)
    if fs_id is None:
        return prefix + "no filesystem id"
    fs = fetcher.filesystems.get(fs_id)
    if fs is None:
        return prefix + f"filesystem {fs_id}: not mounted here (tried after mounted ones)"
    return prefix + f"filesystem {fs_id}: mounted here at {fs.mountpoint} ({fs.name}), " \
        "tried first"


def _judge(fetcher: Fetcher, location: Location, image: Image, base_dir: str
           ) -> tuple[list[str], str | None]:
    try:
        path, fs = fetcher.resolve(location)
        fd = shared_fs.open_source(path, fs)
        try:
            size = os.fstat(fd).st_size
        finally:
            os.close(fd)
        if size != image.size:
            raise DirectPathUnavailable(
                "size_mismatch", f"{path} has {size} bytes, the image has {image.size}")
    except DirectPathUnavailable as exc:
        return [f"direct path: NO ({exc.reason}): {exc.detail}"], None
    except ChuteError as exc:
        return [f"direct path: NO: {exc.message}"], None
    lines = [f"direct path: YES, local file {path} (filesystem {fs.name})"]
    lines.extend(_primitives(path, base_dir))
    return lines, path


def _primitives(path: str, base_dir: str) -> list[str]:
    try:
        os.makedirs(base_dir, exist_ok=True)
        probes = copy.probe(path, base_dir)
    except OSError as exc:
        return [f"copy primitives: cannot probe into {base_dir}: {exc.strerror}"]
    usable = next(p.primitive for p in probes if p.ok)
    states = ", ".join(f"{p.primitive} {'ok' if p.ok else 'refused (' + p.reason + ')'}"
                       for p in probes)
    return [f"copy primitives to {base_dir}: {states}", f"would copy with: {usable}"]
