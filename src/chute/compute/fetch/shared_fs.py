"""The shared-filesystem path: turn a `file://` location into a file under this host's mountpoint.

Every flaw of Nova's handler (docs/architecture.md#nova-file-handler) is a rule here:
- the URL is untrusted: decoded once, `.`/`..` segments (also as `%2e%2e`) and NUL refused,
  doubled slashes collapsed;
- "under Glance's mountpoint" is decided by path components, never by string prefix, so
  `/mnt/g` does not contain `/mnt/gluster` and a trailing slash changes nothing;
- no "legacy mode" reading the URL path verbatim: a location is used only through a configured
  `[image_file_url:NAME]` whose `id` matches the location's metadata;
- symlinks are resolved before the containment check, the final component is opened with
  O_NOFOLLOW, and the opened descriptor is checked again (its /proc/self/fd link and inode) so
  a path swapped between check and open is caught;
- only regular files: a FIFO would block, a device could be any disk of this host.
Every refusal is a DirectPathUnavailable whose reason code names the rule.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

from chute.errors import DirectPathUnavailable


@dataclass(frozen=True)
class Filesystem:
    """One `[image_file_url:NAME]`: the shared filesystem `id` and where this host mounts it."""

    name: str
    id: str
    mountpoint: str


def components(path: str, what: str) -> list[str]:
    """The components of an absolute path; refuses `.`/`..` segments and NUL."""
    if "\0" in path:
        raise DirectPathUnavailable("bad_url", f"{what} contains a NUL byte")
    if not path.startswith("/"):
        raise DirectPathUnavailable("bad_url", f"{what} {path!r} is not absolute")
    parts = path.split("/")
    if any(part in (".", "..") for part in parts):
        raise DirectPathUnavailable("dot_dot", f"{what} {path!r} has a '.' or '..' segment")
    return [part for part in parts if part]


def url_path(url: str) -> list[str]:
    """Components of a `file://` URL's path, percent-decoded exactly once."""
    parts = urlsplit(url)
    if parts.netloc not in ("", "localhost"):
        raise DirectPathUnavailable("bad_url", f"names another host ({parts.netloc})")
    if parts.query or parts.fragment:
        raise DirectPathUnavailable("bad_url", "has a query or fragment")
    return components(unquote(parts.path), "path")


def _under(path: str, root: str) -> bool:
    return path != root and os.path.commonpath([path, root]) == root


def local_path(url: str, metadata: Mapping[str, Any], by_id: Mapping[str, Filesystem]
               ) -> tuple[str, Filesystem]:
    """The real local path of a file location, and the filesystem it lies in."""
    path = url_path(url)
    fs_id, glance_mount = metadata.get("id"), metadata.get("mountpoint")
    if not isinstance(fs_id, str) or not isinstance(glance_mount, str) or not fs_id:
        raise DirectPathUnavailable(
            "no_metadata", "the location has no filesystem metadata (id and mountpoint)")
    fs = by_id.get(fs_id)
    if fs is None:
        known = ", ".join(sorted(by_id)) or "none configured"
        raise DirectPathUnavailable(
            "unknown_filesystem", f"filesystem id {fs_id!r} is not configured here ({known})")
    mount = components(glance_mount, "the image service's mountpoint")
    if len(path) <= len(mount) or path[: len(mount)] != mount:
        raise DirectPathUnavailable(
            "outside_mountpoint", f"/{'/'.join(path)} is not under the image service's "
            f"mountpoint {glance_mount}")
    local = os.path.join(fs.mountpoint, *path[len(mount):])
    real, real_mount = os.path.realpath(local), os.path.realpath(fs.mountpoint)
    if not _under(real, real_mount):
        raise DirectPathUnavailable(
            "symlink_escape", f"{local} resolves to {real}, outside the mountpoint "
            f"{fs.mountpoint} of filesystem {fs.name}")
    return real, fs


def open_source(path: str, fs: Filesystem) -> int:
    """Open the resolved `path` read-only if it is still a regular file under `fs`."""
    try:
        before = os.stat(path, follow_symlinks=False)
    except FileNotFoundError:
        raise DirectPathUnavailable("missing_file", f"{path} does not exist") from None
    except OSError as exc:
        raise DirectPathUnavailable("not_readable", f"{path}: {exc.strerror}") from None
    _require_regular(path, before)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        reason = {errno.ENOENT: "missing_file", errno.ELOOP: "symlink_escape"}.get(
            exc.errno or 0, "not_readable")
        raise DirectPathUnavailable(reason, f"{path} cannot be opened: {exc.strerror}") from None
    try:
        _require_same(path, fd, before, fs)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _require_regular(path: str, st: os.stat_result) -> None:
    if stat.S_ISREG(st.st_mode):
        return
    kind = ("a directory" if stat.S_ISDIR(st.st_mode) else "a FIFO" if stat.S_ISFIFO(st.st_mode)
            else "a device" if stat.S_ISBLK(st.st_mode) or stat.S_ISCHR(st.st_mode)
            else "a symlink" if stat.S_ISLNK(st.st_mode) else "not a regular file")
    raise DirectPathUnavailable("not_regular_file", f"{path} is {kind}")


def _require_same(path: str, fd: int, before: os.stat_result, fs: Filesystem) -> None:
    """The descriptor is the inode we checked, still under the mountpoint (no swap race)."""
    after = os.fstat(fd)
    _require_regular(path, after)
    opened = os.readlink(f"/proc/self/fd/{fd}")
    if (after.st_dev, after.st_ino) != (before.st_dev, before.st_ino) or not _under(
            opened, os.path.realpath(fs.mountpoint)):
        raise DirectPathUnavailable(
            "symlink_escape", f"{path} changed while being opened (now {opened})")

