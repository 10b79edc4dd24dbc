"""The filesystem store: image bytes as files `<datadir>/<image id>`.

Writes go to a hidden temporary name `<datadir>/.<id>.<host>.partial`, are fsynced and linked
into place, then the directory is fsynced, so a crash or a full disk can never leave a file under
the final name that looks like a whole image. `recover()` removes the temporary files a crash of
*this host* left: several API nodes may share the datadir, and their uploads are not ours.

The temporary name stays (a second hard link to the final file) until the database has recorded
the upload (`settle()`): it is how a restarting node on a shared database knows that an image
left in `saving` with a final-named file was its own upload, caught between the link and the
commit, and not another node's upload going on right now. A rename would have dropped that mark.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import socket
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

from chute.config import Config, Fail
from chute.errors import StorageFull
from chute.stores import metadata as metadata_file
from chute.stores.base import Extents, Opened, StoredLocation, coalesce
from chute.stores.options import DEFAULT_DATADIR, SECTION, BackendSettings, StoreSettings
from chute.transfer import copy
from chute.transfer.odirect import ODirectFile
from chute.transfer.writeback import Writeback
from chute.transfer.zeros import all_zero

LOG = logging.getLogger(__name__)

PARTIAL_PREFIX, PARTIAL_SUFFIX = ".", ".partial"
STAGING = ".staging"  # the import's staging area, one per datadir (FilesystemStore.stager)
# Filesystems without hard links (FAT, some FUSE and SMB mounts) answer link(2) with these.
_NO_HARD_LINKS = (errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EMLINK, errno.ENOSYS)
HOST = socket.gethostname().replace("/", "_") or "localhost"


@dataclass(frozen=True)
class Datadir:
    path: str
    priority: int


def _parse_datadirs(settings: StoreSettings, fail: Fail) -> list[Datadir]:
    single, many = settings.datadir, settings.datadirs
    if many and single and single != DEFAULT_DATADIR:
        raise fail(SECTION, "filesystem_store_datadirs",
                   "cannot be used together with filesystem_store_datadir; set only one of them")
    if not many:
        if not single:
            raise fail(SECTION, "filesystem_store_datadir",
                       "is empty and filesystem_store_datadirs is not set")
        return [Datadir(os.path.abspath(single), 0)]
    dirs: dict[str, Datadir] = {}
    for item in many:
        path, sep, prio = item.rpartition(":")
        if not sep:
            path, prio = item, "0"
        try:
            priority = int(prio)
        except ValueError:
            raise fail(SECTION, "filesystem_store_datadirs",
                       f"priority {prio!r} of {item!r} is not an integer") from None
        if not path:
            raise fail(SECTION, "filesystem_store_datadirs", f"{item!r} has no path")
        path = os.path.abspath(path)
        if path in dirs and dirs[path].priority != priority:
            raise fail(SECTION, "filesystem_store_datadirs",
                       f"{path} is listed with different priorities")
        dirs[path] = Datadir(path, priority)
    return list(dirs.values())


def _prepare(datadir: Datadir, file_perm: int, where: tuple[str, str], fail: Fail) -> None:
    """Create and check `datadir`; `where` is the (section, option) a problem is named by."""
    section, option = where
    try:
        os.makedirs(datadir.path, mode=0o750, exist_ok=True)
    except OSError as exc:
        raise fail(section, option, f"cannot create {datadir.path}: {exc.strerror}") from None
    if not os.access(datadir.path, os.W_OK | os.X_OK):
        raise fail(section, option, f"{datadir.path} is not writable")
    perm = file_perm
    if perm > 0:
        # As glance_store: files readable by group/other need a traversable directory.
        mode = int(str(perm), 8)
        extra = (0o010 if mode & 0o070 else 0) | (0o001 if mode & 0o007 else 0)
        if extra:
            current = os.stat(datadir.path).st_mode & 0o7777
            os.chmod(datadir.path, current | extra)


def _free_bytes(path: str) -> int:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def path_from_url(url: str) -> str:
    """`file:///a/b` -> `/a/b` (also `filesystem://`, which glance_store accepts)."""
    parts = urlsplit(url)
    return unquote(parts.netloc + parts.path)


class FileWriter:
    """Bytes of one upload, written to a hidden temporary file until commit()."""

    def __init__(self, store: "FilesystemStore", datadir: str, image_id: str,
                 final_dir: str | None = None) -> None:
        self._store = store
        self._dir = final_dir or datadir
        self.final = os.path.join(self._dir, image_id)
        self.partial = os.path.join(datadir, f"{PARTIAL_PREFIX}{image_id}.{HOST}{PARTIAL_SUFFIX}")
        # Data, not for every local user: 0640 (less if the umask says so) unless configured.
        mode = int(str(store.file_perm), 8) if store.file_perm > 0 else 0o640
        self._size = 0  # bytes received, holes included: the final ftruncate sets it
        try:
            self._fd: int | None = os.open(
                self.partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
        except OSError as exc:
            raise self._translate(exc) from None
        # Around the page cache where the filesystem allows (chute.transfer.odirect: the
        # page-cache copy was 30% of both cores during a 1 GiB upload); else through it,
        # with writeback started as it goes so that commit()'s fsync has little left to do.
        self._odirect = ODirectFile.open(self._fd, self.partial)
        self._writeback = Writeback(self._fd) if self._odirect is None else None

    def _translate(self, exc: OSError) -> Exception:
        if exc.errno in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT):
            return StorageFull(f"Image storage media is full: {exc.strerror}")
        return exc

    def write(self, chunk: bytes | memoryview) -> None:
        view = memoryview(chunk)
        assert self._fd is not None
        self._size += len(view)
        try:
            if all_zero(chunk) and self._skip(len(view)):  # a hole (chute.transfer.zeros)
                return
            if self._odirect is not None:
                self._odirect.write(view)
                return
            while view:
                written = os.write(self._fd, view)
                view = view[written:]
        except OSError as exc:
            raise self._translate(exc) from None
        assert self._writeback is not None
        self._writeback.written(self._size)

    def _skip(self, nbytes: int) -> bool:
        """Leave a hole of `nbytes` instead of writing zeros, where alignment allows."""
        assert self._fd is not None
        if self._odirect is not None:
            return self._odirect.skip(nbytes)
        os.lseek(self._fd, nbytes, os.SEEK_CUR)
        return True

    def commit(self) -> StoredLocation:
        assert self._fd is not None
        try:
            if self._odirect is not None:
                self._odirect.close()  # writes the unaligned tail through self._fd
                self._odirect = None
            os.ftruncate(self._fd, self._size)  # trailing holes still count in the size
            os.fsync(self._fd)
            if self._store.file_perm > 0:
                os.fchmod(self._fd, int(str(self._store.file_perm), 8))
            os.close(self._fd)
            self._fd = None
            # link(2) never replaces: an existing final name (glance_store's Duplicate, bytes
            # another image may own) is EEXIST.
            self._link()
            dirfd = os.open(self._dir, os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(dirfd)
            finally:
                os.close(dirfd)
        except OSError as exc:
            raise self._translate(exc) from None
        return self._store.location(self.final)

    def _link(self) -> None:
        try:
            os.link(self.partial, self.final)
        except OSError as exc:
            if exc.errno not in _NO_HARD_LINKS:
                raise
            if os.path.lexists(self.final):
                raise FileExistsError(errno.EEXIST, "image file already exists",
                                      self.final) from None
            # One name only: a crash before the commit is then caught on SQLite alone.
            os.rename(self.partial, self.final)

    def settle(self) -> None:
        """The database has the outcome: the temporary name is no longer needed."""
        try:
            os.unlink(self.partial)
        except FileNotFoundError:
            pass

    def abort(self) -> None:
        if self._odirect is not None:
            self._odirect.discard()
            self._odirect = None
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        try:
            os.unlink(self.partial)
        except FileNotFoundError:
            pass


class FilesystemStore:
    schemes: tuple[str, ...] = ("file", "filesystem")

    def __init__(self, datadirs: list[Datadir], file_perm: int,
                 metadata: list[dict[str, Any]], metadata_path: str,
                 store_id: str | None = None) -> None:
        self.datadirs = datadirs
        self.file_perm = file_perm
        self.metadata = metadata
        self.metadata_path = metadata_path
        # Its id in `enabled_backends`, recorded as `store` in each location's metadata as
        # Glance does; None for the single store of [glance_store] (no `store` key, as Glance).
        self.store_id = store_id

    def location(self, path: str) -> StoredLocation:
        """The location of the image file at `path`: its filesystem's `{id, mountpoint}`
        (the metadata-file entry containing it) and, in a multi-store setup, `store`."""
        metadata = metadata_file.match(self.metadata, path)
        if self.metadata and not metadata:
            LOG.warning("%s lies under no mountpoint of %s; recording no location metadata",
                        path, self.metadata_path)
        if self.store_id is not None:
            metadata["store"] = self.store_id
        return StoredLocation("file://" + path, metadata)

    def owns(self, url: str) -> bool:
        """Whether `url` names a file directly in one of this store's datadirs."""
        path = os.path.normpath(path_from_url(url))
        return any(os.path.dirname(path) == os.path.normpath(d.path) for d in self.datadirs)

    @classmethod
    def from_settings(cls, settings: StoreSettings, fail: Fail) -> FilesystemStore:
        """Validate and prepare the store at start; every problem is `fail(...)` raised."""
        datadirs = _parse_datadirs(settings, fail)
        option = "filesystem_store_datadirs" if settings.datadirs else "filesystem_store_datadir"
        for datadir in datadirs:
            _prepare(datadir, settings.file_perm, (SECTION, option), fail)
        entries = metadata_file.load(settings.metadata_file, fail)
        return cls(datadirs, settings.file_perm, entries, settings.metadata_file)

    @classmethod
    def from_backend(cls, backend: BackendSettings, fail: Fail) -> FilesystemStore:
        """One store of `enabled_backends`, from its own section `[<id>]`."""
        datadir = Datadir(os.path.abspath(backend.datadir), 0)
        _prepare(datadir, backend.file_perm, (backend.id, "filesystem_store_datadir"), fail)
        entries = metadata_file.load(backend.metadata_file, fail, section=backend.id)
        return cls([datadir], backend.file_perm, entries, backend.metadata_file, backend.id)

    @classmethod
    def from_config(cls, conf: Config) -> FilesystemStore:
        return cls.from_settings(StoreSettings.from_config(conf), conf.fail)

    @property
    def root(self) -> str:
        """The data root: the parent of the first datadir (default home of the database)."""
        return os.path.dirname(os.path.normpath(self.datadirs[0].path))

    def choose_datadir(self, size_hint: int) -> str:
        """Highest priority first; within it the directory with the most free space."""
        if len(self.datadirs) == 1:
            return self.datadirs[0].path
        for priority in sorted({d.priority for d in self.datadirs}, reverse=True):
            candidates = [(_free_bytes(d.path), d.path) for d in self.datadirs
                          if d.priority == priority]
            free, path = max(candidates)
            if free >= size_hint:
                return path
        raise StorageFull("Image storage media is full: no datadir has "
                          f"{size_hint} bytes free")

    def writer(self, image_id: str, size_hint: int) -> FileWriter:
        return FileWriter(self, self.choose_datadir(size_hint), image_id)

    def stager(self, image_id: str, size_hint: int) -> FileWriter:
        """A writer whose final name is `<datadir>/.staging/<id>`: the interoperable import's
        staging area lies inside the datadir it will be imported to, so that the import is a
        rename on one filesystem (`promote`), never a second copy of the bytes. Staged files
        are not served (`_owned_path` accepts only files directly in a datadir)."""
        datadir = self.choose_datadir(size_hint)
        staging = os.path.join(datadir, STAGING)
        os.makedirs(staging, mode=0o750, exist_ok=True)
        return FileWriter(self, datadir, image_id, final_dir=staging)

    def staged_path(self, image_id: str) -> str | None:
        for datadir in self.datadirs:
            path = os.path.join(datadir.path, STAGING, image_id)
            if os.path.isfile(path) and not os.path.islink(path):
                return path
        return None

    def promote(self, image_id: str) -> StoredLocation:
        """The staged file of `image_id` moved to its final name: link, unlink, fsync the
        directories (link(2) never replaces an existing image file). FileNotFoundError when
        nothing is staged."""
        staged = self.staged_path(image_id)
        if staged is None:
            raise FileNotFoundError(errno.ENOENT, "no staged data", image_id)
        datadir = os.path.dirname(os.path.dirname(staged))
        final = os.path.join(datadir, image_id)
        try:
            os.link(staged, final)
        except OSError as exc:
            if exc.errno not in _NO_HARD_LINKS:
                raise
            os.rename(staged, final)
        else:
            os.unlink(staged)
        for directory in (datadir, os.path.dirname(staged)):
            dirfd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(dirfd)
            finally:
                os.close(dirfd)
        return self.location(final)

    def unstage(self, image_id: str) -> None:
        """Remove the staged data of `image_id`, if any."""
        staged = self.staged_path(image_id)
        if staged is not None:
            os.unlink(staged)

    def _owned_path(self, url: str) -> str | None:
        """The local path of `url` if it lies in one of our datadirs (never read elsewhere)."""
        path = os.path.normpath(path_from_url(url))
        for datadir in self.datadirs:
            if os.path.dirname(path) == os.path.normpath(datadir.path):
                return path
        LOG.warning("location %s is outside the configured datadirs; ignoring it", url)
        return None

    def open(self, url: str) -> Opened | None:
        path = self._owned_path(url)
        if path is None:
            return None
        # Only regular files: opening a FIFO planted in the datadir would block this worker
        # thread forever, and opening a device can have side effects. The name is checked and
        # opened relative to the datadir's descriptor (one component: no directory on the way
        # can be swapped), the open neither follows a symlink (O_NOFOLLOW: a store file swapped
        # for a link to a host file of the same size is ELOOP, never opened) nor blocks
        # (O_NONBLOCK), and the descriptor must be the very inode that was checked: a name
        # swapped for another file between the lstat and the open is refused, not served.
        directory, name = os.path.split(path)
        try:
            dirfd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as exc:
            LOG.warning("cannot open %s: %s", directory, exc.strerror)
            return None
        try:
            checked = os.stat(name, dir_fd=dirfd, follow_symlinks=False)
            if not stat.S_ISREG(checked.st_mode):
                LOG.warning("%s is not a regular file; not opening it", path)
                return None
            fd = os.open(name, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK,
                         dir_fd=dirfd)
        except OSError as exc:
            LOG.warning("cannot open %s: %s", path, exc.strerror)
            return None
        finally:
            os.close(dirfd)
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or (st.st_dev, st.st_ino) != (checked.st_dev,
                                                                        checked.st_ino):
            os.close(fd)
            LOG.warning("%s changed while being opened; not serving it", path)
            return None
        fileobj = os.fdopen(fd, "rb", buffering=0)
        return Opened(fileobj, st.st_size)

    def extents(self, url: str) -> Extents | None:
        """The data segments of the file at `url` (SEEK_DATA/SEEK_HOLE, tiny holes merged);
        None where `open` gives None - it is found and checked exactly as for a download."""
        opened = self.open(url)
        if opened is None:
            return None
        with opened.fileobj as fileobj:
            found = copy.segments(fileobj.fileno(), opened.size)
            return coalesce(((offset, n) for is_data, offset, n in found if is_data),
                            opened.size)

    def delete(self, url: str) -> None:
        path = self._owned_path(url)
        if path is None:
            return
        try:
            os.unlink(path)
        except FileNotFoundError:
            LOG.warning("image file %s was already gone", path)

    def partial_ids(self) -> set[str]:
        """The images that have a temporary file in some datadir, written by any host."""
        found = set()
        for datadir in self.datadirs:
            for name in os.listdir(datadir.path):
                if name.startswith(PARTIAL_PREFIX) and name.endswith(PARTIAL_SUFFIX):
                    found.add(name[len(PARTIAL_PREFIX):].split(".", 1)[0])
        return found

    def abandon(self, image_id: str, final: bool) -> list[str]:
        """Remove the temporary files of `image_id`, whichever host wrote them, and with
        `final` its final-named and staged files too; returns the paths removed. Only for an
        upload known to be dead (chute.images.claims: nobody holds its claim)."""
        removed = []
        for datadir in self.datadirs:
            names = [n for n in os.listdir(datadir.path)
                     if n.startswith(f"{PARTIAL_PREFIX}{image_id}.") and n.endswith(PARTIAL_SUFFIX)]
            if final:
                names += [image_id, os.path.join(STAGING, image_id)]
            for name in names:
                path = os.path.join(datadir.path, name)
                if os.path.isfile(path) and not os.path.islink(path):
                    os.unlink(path)
                    removed.append(path)
        return removed

    def recover(self, interrupted: Sequence[str] = ()) -> dict[str, str]:
        """Remove what crashed uploads left (call before serving); returns {path: image id}.

        That is this host's temporary files, and the final-named file of each `interrupted`
        image: a crash between the link and the database commit leaves one that no image
        owns, and it would block a retried upload.
        """
        removed: dict[str, str] = {}
        suffix = f".{HOST}{PARTIAL_SUFFIX}"
        for datadir in self.datadirs:
            for image_id in interrupted:
                path = os.path.join(datadir.path, image_id)
                if os.path.isfile(path) and not os.path.islink(path):
                    os.unlink(path)
                    removed[path] = image_id
            for name in os.listdir(datadir.path):
                if name.startswith(PARTIAL_PREFIX) and name.endswith(suffix):
                    path = os.path.join(datadir.path, name)
                    if os.path.isdir(path):
                        shutil.rmtree(path, ignore_errors=True)
                    else:
                        os.unlink(path)
                    removed[path] = name[len(PARTIAL_PREFIX):-len(suffix)]
        return removed
