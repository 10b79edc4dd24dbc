"""The shared-filesystem path: turn a `file://` location into a file under this host's mountpoint.

Every flaw of Nova's handler (docs/architecture.md#nova-file-handler) is a rule here:
- the URL is untrusted: decoded once, `.`/`..` segments (also as `%2e%2e`) and NUL refused,
  doubled slashes collapsed;
- "under Glance's mountpoint" is decided by path components, never by string prefix, so
  `/mnt/g` does not contain `/mnt/gluster` and a trailing slash changes nothing;
- no "legacy mode" reading the URL path verbatim: a location is used only through a configured
  `[image_file_url:NAME]` whose `id` matches the location's metadata;
- symlinks are resolved before the containment check; where the kernel has openat2(2)
  (Linux 5.6) the open itself resolves beneath the mountpoint with no symlink at all
  (RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS), so a directory swapped for
  a symlink after the check gets nothing outside opened; elsewhere the final component is
  opened with O_NOFOLLOW. Either way the opened descriptor is checked again (its inode and its
  /proc/self/fd link) so a path swapped between check and open is refused;
- only regular files: a FIFO would block, a device could be any disk of this host.
Every refusal is a DirectPathUnavailable whose reason code names the rule.
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

from chute.errors import DirectPathUnavailable

# openat2(2): the same number on every architecture (syscalls from 424 on are unified).
_SYS_OPENAT2 = 437 if platform.machine() in ("x86_64", "aarch64", "riscv64", "ppc64le",
                                             "s390x") else None
_RESOLVE_NO_MAGICLINKS, _RESOLVE_NO_SYMLINKS, _RESOLVE_BENEATH = 0x02, 0x04, 0x08
_OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
# None until probed; False once the kernel (or a seccomp filter) refused the syscall itself:
# not asked again (docs/architecture.md#remember-refusals).
openat2_usable: bool | None = None if _SYS_OPENAT2 is not None else False


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64),
                ("resolve", ctypes.c_uint64)]


_libc = ctypes.CDLL(None, use_errno=True)


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
        fd = _open_beneath(path, fs)
    except OSError as exc:
        reason = {errno.ENOENT: "missing_file", errno.ELOOP: "symlink_escape",
                  errno.EXDEV: "symlink_escape"}.get(exc.errno or 0, "not_readable")
        raise DirectPathUnavailable(reason, f"{path} cannot be opened: {exc.strerror}") from None
    try:
        _require_same(path, fd, before, fs)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _open_beneath(path: str, fs: Filesystem) -> int:
    """Open `path` (resolved, under the mountpoint) by openat2 beneath the mountpoint where
    the kernel has it, else with O_NOFOLLOW on the final component only."""
    global openat2_usable
    if openat2_usable is not False:
        mount = os.path.realpath(fs.mountpoint)
        relative = os.path.relpath(path, mount)
        dirfd = os.open(mount, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            how = _OpenHow(_OPEN_FLAGS, 0,
                           _RESOLVE_BENEATH | _RESOLVE_NO_SYMLINKS | _RESOLVE_NO_MAGICLINKS)
            fd = int(_libc.syscall(_SYS_OPENAT2, dirfd, os.fsencode(relative),
                                   ctypes.byref(how), ctypes.sizeof(how)))
            err = ctypes.get_errno() if fd < 0 else 0
        finally:
            os.close(dirfd)
        if fd >= 0:
            openat2_usable = True
            return fd
        if err not in (errno.ENOSYS, errno.EPERM) or openat2_usable:
            raise OSError(err, os.strerror(err), path)
        openat2_usable = False  # no such syscall here (or filtered): today's checks only
    return os.open(path, _OPEN_FLAGS)


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

