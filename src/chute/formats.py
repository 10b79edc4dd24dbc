"""Disk image format inspection: what an image really is, and whether it is safe to use.

Built on `oslo_utils.imageutils.format_inspector` (the inspector Glance and Nova use) and
following Glance's upload rules (glance/location.py): exactly {iso, gpt} is a hybrid ISO;
several formats at once is refused; `raw` as disk_format accepts any content; otherwise the
content must match disk_format. The detected format's safety checks always run, so a qcow2
with a backing file or an external data file (CVE-2024-32498) and a VMDK whose extents point
outside the file (CVE-2022-47951) are refused whatever disk_format claims.

`StreamInspector` is fed the upload's chunks as they pass (no second read of the data);
`inspect_file` checks a file on disk (compute re-checks cached bases before using them).
"""

from __future__ import annotations

import functools
import importlib.util
import logging
import os
import struct
import sys
import types
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from chute.errors import UnsupportedFormat

LOG = logging.getLogger(__name__)

_LUKS = "oslo_utils.imageutils._luks"


@functools.cache
def _real_luks() -> types.ModuleType:
    package = importlib.util.find_spec("oslo_utils.imageutils")
    assert package is not None and package.origin is not None
    spec = importlib.util.spec_from_file_location(
        _LUKS, os.path.join(os.path.dirname(package.origin), "_luks.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class _DeferredLuks(types.ModuleType):
    """Stands in for oslo's `_luks` until something really uses it, then forwards to it.

    format_inspector imports `_luks` at the top, and `_luks` imports `cryptography` (its Rust
    extension: 7.5-8.6 MiB of RSS in every chute-api worker) - only to decrypt LUKS images
    when a passphrase is given, which chute never does. At import time format_inspector only
    names `_luks.LUKSHeader` in an annotation (and later in a `cast`, a no-op at run time), so
    that one name is a placeholder here. Any other attribute loads the real module and is
    answered by it, so nothing can behave differently - at worst the memory is spent after all.
    """

    LUKSHeader = dict

    def __getattr__(self, name: str) -> Any:
        return getattr(_real_luks(), name)


sys.modules.setdefault(_LUKS, _DeferredLuks(_LUKS))
from oslo_utils.imageutils import format_inspector as fi  # noqa: E402 - after the stand-in

# Formats the inspector understands; other disk_formats (ami, ari, aki, ploop) cannot be checked.
INSPECTABLE = frozenset(fi.ALL_FORMATS)

# Glance disk_format -> qemu's driver name: the formats an instance disk can be made from.
# Those whose driver is not "raw" are the ones force_raw_images converts.
QEMU_FORMATS: Mapping[str, str] = types.MappingProxyType({
    "raw": "raw", "qcow2": "qcow2", "iso": "raw", "vmdk": "vmdk", "vdi": "vdi", "vhd": "vpc",
    "vhdx": "vhdx"})


def converts_to_raw(disk_format: str) -> bool:
    """True when qemu-img can turn this format into a raw disk (it is not raw already)."""
    return QEMU_FORMATS.get(disk_format, "raw") != "raw"


@dataclass(frozen=True)
class FormatInfo:
    format: str
    virtual_size: int | None


class _Feed:
    """The InspectWrapper's 'source': hands back the chunk we were just given."""

    def __init__(self) -> None:
        self.chunk = b""

    def read(self, size: int) -> bytes:
        chunk, self.chunk = self.chunk, b""
        return chunk


class StreamInspector:
    """Inspect a stream chunk by chunk, as it is being stored."""

    def __init__(self) -> None:
        self._feed = _Feed()
        self._wrapper = fi.InspectWrapper(self._feed)  # type: ignore[arg-type]
        self.nbytes = 0
        self._done = False

    def feed(self, chunk: bytes) -> None:
        self.nbytes += len(chunk)
        if self._done:
            return
        self._feed.chunk = chunk
        self._wrapper.read(len(chunk))
        # Once every inspector has all it needs (raw data: after the first MiB) more chunks
        # change nothing; skipping them saves ~0.2 s of CPU per GiB. Inspectors that want the
        # end of the stream (a VMDK footer) stay incomplete, so they keep being fed.
        self._done = self.decided()

    def decided(self) -> bool:
        """True once every inspector has seen enough to decide (used to stop reading a file)."""
        try:
            return self._wrapper.formats is not None
        except fi.ImageFormatError:
            return True

    def finish(self, disk_format: str, require_match: bool = True) -> FormatInfo:
        """Decide after the last chunk; raise UnsupportedFormat when the image is refused."""
        self._wrapper.close()
        return _evaluate(self._wrapper, disk_format, self.nbytes, require_match)


def _detected(wrapper: fi.InspectWrapper) -> fi.FileInspector:
    try:
        matches = wrapper.formats or []
    except fi.ImageFormatError as exc:
        raise UnsupportedFormat(f"Image format detection failed: {exc}") from None
    names = {str(m) for m in matches}
    if names == {"iso", "gpt"}:
        return next(m for m in matches if str(m) == "iso")
    if len(matches) != 1:
        found = ",".join(sorted(names)) or "none"
        raise UnsupportedFormat(f"Image format detection failed: Multiple formats detected: "
                                f"{found}")
    return matches[0]


def _safety(inspector: fi.FileInspector) -> None:
    try:
        inspector.safety_check()
    except fi.SafetyCheckFailed as exc:
        reasons = "; ".join(f"{name}: {err}" for name, err in sorted(exc.failures.items()))
        raise UnsupportedFormat(f"Image failed safety checks ({inspector}): {reasons}") from None
    except fi.ImageFormatError as exc:
        raise UnsupportedFormat(f"Image failed safety checks ({inspector}): {exc}") from None


def _evaluate(wrapper: fi.InspectWrapper, disk_format: str, nbytes: int,
              require_match: bool) -> FormatInfo:
    inspector = _detected(wrapper)
    name = str(inspector)
    if name == disk_format:
        virtual: int | None = nbytes if name == "raw" else inspector.virtual_size
    elif name == "raw" and disk_format not in INSPECTABLE:
        virtual = None
    elif disk_format == "raw":
        LOG.warning("image declared raw contains %s data; accepting it as raw", name)
        virtual = nbytes
    elif not require_match:
        LOG.warning("image disk_format %s does not match stream data %s", disk_format, name)
        _safety(inspector)
        return FormatInfo(name, None)
    else:
        raise UnsupportedFormat(f"Image disk_format {disk_format} does not match stream data "
                                f"{name}")
    _safety(inspector)
    if name == disk_format == "qcow2":
        _qcow2_structure(inspector, nbytes)
    return FormatInfo(name, virtual)


def _qcow2_structure(inspector: fi.FileInspector, nbytes: int) -> None:
    """Refuse a qcow2 header that lies: oslo's checks pass a header claiming an exabyte
    virtual size (qemu: "Image is too big") or naming L1/refcount tables past the end of a
    truncated file (qemu reads them as zeros: an empty disk instead of the image)."""
    header = inspector.region("header").data
    (cluster_bits, size, _crypt, l1_size, l1_offset, rt_offset,
     rt_clusters) = struct.unpack(">IQIIQQI", header[20:60])
    problem = None
    if not 9 <= cluster_bits <= 21:  # qemu's MIN/MAX_CLUSTER_BITS
        problem = f"cluster_bits {cluster_bits} is outside 9..21"
    elif size > l1_size * (1 << (cluster_bits - 3)) * (1 << cluster_bits):
        problem = f"virtual size {size} is more than its L1 table ({l1_size} entries) maps"
    elif l1_offset + 8 * l1_size > nbytes or rt_offset + (rt_clusters << cluster_bits) > nbytes:
        problem = f"its L1 or refcount table lies past the end of the data ({nbytes} bytes)"
    if problem is not None:
        raise UnsupportedFormat(f"Image failed safety checks (qcow2): header: {problem}")


def inspect_file(path: str, disk_format: str, chunk_size: int = 1 << 20) -> FormatInfo:
    """Inspect a file on disk, reading only as far as the inspectors need.

    Raises UnsupportedFormat for a qcow2 with a backing or data file, unsafe VMDK extents,
    content not matching `disk_format`, or any failed safety check; OSError if unreadable.
    """
    inspector = StreamInspector()
    size = os.path.getsize(path)
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_size):
            inspector.feed(chunk)
            if inspector.decided():
                break
    inspector.nbytes = size
    return inspector.finish(disk_format)
