"""All SQL of the image registry. Returns `ImageRecord`s; knows nothing of HTTP or rules.

Status changes are compare-and-swap UPDATEs (`... WHERE status = :expected`, rowcount checked):
several gunicorn workers, and several API nodes on PostgreSQL, race on the same rows. Metadata
writes (a PATCH, a tag) are compare-and-swap on `images.version`, which each of them bumps in
the UPDATE that opens its transaction: that UPDATE also takes the row's lock (PostgreSQL) or the
database's write lock (SQLite) before anything else is written, so two writers never interleave
and the loser sees rowcount 0 instead of overwriting what the winner wrote.
SQLite runs in WAL mode with a busy timeout so readers never block the single writer and
writers from other worker processes wait instead of failing with "database is locked".
"""

from __future__ import annotations

import functools
import logging
import os
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Generic, Iterable, TypeVar

from sqlalchemy import (
    BindParameter,
    ColumnElement,
    Connection,
    Engine,
    Row,
    and_,
    bindparam,
    create_engine,
    delete,
    event,
    exists,
    false,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.exc import IntegrityError as SQLIntegrityError
from sqlalchemy.pool import ConnectionPoolEntry

from chute.errors import Conflict
from chute.images import status
from chute.images.models import IMAGE_LOCATIONS, IMAGE_PROPERTIES, IMAGE_TAGS, IMAGES
from chute.images.status import (
    ACTIVATE,
    ACTIVE,
    DEACTIVATED,
    DELETED,
    FAILED_IMPORT,
    IMPORT_LOCK,
    IMPORTING,
    KILLED,
    LOCATION_ACTIVE,
    LOCATION_DELETED,
    QUEUED,
    REQUEUE,
    SAVING,
    UPLOADING,
    LocationStatus,
    Status,
)
from chute.stores.base import StoredLocation

LOG = logging.getLogger(__name__)

IMAGE_COLUMNS = [c.name for c in IMAGES.columns]
T_IMG = IMAGES
T_PROP = IMAGE_PROPERTIES
T_TAG = IMAGE_TAGS
T_LOC = IMAGE_LOCATIONS
_T = TypeVar("_T")


def utcnow() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


@dataclass
class LocationRecord:
    """One row of image_locations: where a copy of the image's data is, as the registry has it."""

    url: str
    metadata: dict[str, Any]
    status: LocationStatus = LOCATION_ACTIVE


class _Column(Generic[_T]):
    """An ImageRecord attribute reading its column from `columns`, typed as `_T`."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, record: ImageRecord, owner: type) -> _T:
        value: _T = record.columns[self.name]
        return value


@dataclass
class ImageRecord:
    """One image row with its properties, tags and active locations."""

    columns: dict[str, Any]
    properties: dict[str, str] = field(default_factory=dict)
    tags: list[str] = field(default_factory=list)
    locations: list[LocationRecord] = field(default_factory=list)

    def __getattr__(self, name: str) -> Any:
        """Any other column by name, untyped (views render them from `columns`)."""
        try:
            return self.__dict__["columns"][name]
        except KeyError:
            raise AttributeError(name) from None

    # The columns the rules read, typed.
    id = _Column[str]()
    status = _Column[str]()
    owner = _Column[str | None]()
    size = _Column[int | None]()
    checksum = _Column[str | None]()
    disk_format = _Column[str | None]()
    container_format = _Column[str | None]()
    protected = _Column[bool]()
    version = _Column[int]()
    chute_blake3_blocks = _Column[str | None]()
    created_at = _Column[datetime]()
    updated_at = _Column[datetime]()


@dataclass
class ListQuery:
    """A validated image-list request (built by the service from query parameters)."""

    equal: list[tuple[str, list[Any]]] = field(default_factory=list)  # column IN values
    properties: dict[str, str] = field(default_factory=dict)
    tags: list[str] = field(default_factory=list)
    size_min: int | None = None
    size_max: int | None = None
    times: list[tuple[str, str, datetime]] = field(default_factory=list)  # column, op, value
    sort: list[tuple[str, str]] = field(default_factory=lambda: [("created_at", "desc")])
    marker: str | None = None
    limit: int = 25
    # Which images the caller may see listed (chute.images.members_db.listed_for); None: all.
    viewer: ColumnElement[bool] | None = None


_NULLABLE_SORT = {"name": "", "container_format": "", "disk_format": "", "size": -1}

# The statements of image-show and image-list, built once. Building a statement cost more
# than running it on SQLite (a profile of image-show: 0.4 of 1.3 ms in the construction of 4
# statements), and every build leaves garbage for the collector: a bind parameter memoizes
# `_cloned_set = {itself}`, a reference cycle, 2 per image-show and 28 per image-list.
_IDS: BindParameter[list[str]] = bindparam("ids", expanding=True)
_PROPS_OF = select(T_PROP).where(T_PROP.c.image_id.in_(_IDS))
_TAGS_OF = select(T_TAG).where(T_TAG.c.image_id.in_(_IDS)).order_by(T_TAG.c.id)
_LOCS_OF = (select(T_LOC).where(T_LOC.c.image_id.in_(_IDS), T_LOC.c.status == LOCATION_ACTIVE)
            .order_by(T_LOC.c.id))
_BY_ID = select(T_IMG).where(T_IMG.c.id == bindparam("image_id"))
_LIVE_BY_ID = _BY_ID.where(T_IMG.c.deleted.is_(False))
_ID_TAKEN = select(T_IMG.c.id).where(T_IMG.c.id == bindparam("image_id"))
_LISTED = select(T_IMG).where(T_IMG.c.deleted.is_(False), T_IMG.c.status != KILLED)


@functools.cache
def _column_in(column: str) -> ColumnElement[bool]:
    """`column IN (...)`, the values bound at execution as `in_<column>`."""
    return T_IMG.c[column].in_(bindparam(f"in_{column}", expanding=True))


@functools.cache
def _sort_expr(key: str) -> ColumnElement[Any]:
    column = T_IMG.c[key]
    if key in _NULLABLE_SORT:
        return func.coalesce(column, _NULLABLE_SORT[key])
    return column


def _sqlite_pragmas(dbapi_conn: DBAPIConnection, _record: ConnectionPoolEntry) -> None:
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


# libpq keepalives: a node whose host vanishes (not only its process) loses its upload claims
# (chute.images.claims) after about idle + interval x count = 30 s.
KEEPALIVE = {"keepalives": 1, "keepalives_idle": 15, "keepalives_interval": 5,
             "keepalives_count": 3}
# pg_advisory_xact_lock's key while migrating: API nodes starting at once against one empty
# database take turns, the later ones finding the schema at head.
MIGRATION_LOCK = 0x6368757465_6170  # "chute" "ap"

# SQLAlchemy's cache of compiled statements, per engine (one per worker). Each distinct
# combination of list filters, sort keys, or inserted and updated columns is an entry of tens
# of KiB: with SQLAlchemy's default size (500, pruned at 750), 3,000 differently filtered
# image-lists grew a 2-worker chute-api from 141 to 196 MiB of RSS. Create, upload, download,
# show, the usual list filters, PATCH, tags, members, (de)activate, stage and import leave 32
# entries in a worker; at 64 (pruned at 96) those stay compiled, and the same 3,000 lists grow
# it by 14 MiB (11-15 after 1,159: bounded). CPU per image-show + image-list pair the same
# within the noise (1.1-1.4 ms in-process, A/B alternated, either size).
QUERY_CACHE_SIZE = 64


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            os.makedirs(os.path.dirname(os.path.abspath(path)) or ".", exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False},
                               query_cache_size=QUERY_CACHE_SIZE)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True, connect_args=KEEPALIVE,
                         query_cache_size=QUERY_CACHE_SIZE)


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest revision (the migrations ship inside the package).

    Alembic (and Mako, which it imports) is imported here, not at the top: chute-api runs this
    in a short-lived child process before it serves (chute.images.main), so the ~10 MiB they
    take never live in the gunicorn master or its workers.
    """
    from alembic import command
    from alembic.config import Config as AlembicConfig

    cfg = AlembicConfig()
    cfg.set_main_option("script_location", "chute.images:migrations")
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(select(func.pg_advisory_xact_lock(MIGRATION_LOCK)))
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


class Database:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # -- reading ---------------------------------------------------------------------------

    def _hydrate(self, conn: Connection, rows: list[Row[Any]]) -> list[ImageRecord]:
        records = {row.id: ImageRecord(dict(row._mapping)) for row in rows}
        if not records:
            return []
        ids = {"ids": list(records)}
        for prop in conn.execute(_PROPS_OF, ids):
            records[prop.image_id].properties[prop.name] = prop.value
        for tag in conn.execute(_TAGS_OF, ids):
            records[tag.image_id].tags.append(tag.value)
        for loc in conn.execute(_LOCS_OF, ids):
            records[loc.image_id].locations.append(
                LocationRecord(loc.url, loc.metadata, loc.status))
        return [records[row.id] for row in rows]

    def get(self, image_id: str, include_deleted: bool = False) -> ImageRecord | None:
        query = _BY_ID if include_deleted else _LIVE_BY_ID
        with self.engine.connect() as conn:
            found = self._hydrate(conn, list(conn.execute(query, {"image_id": image_id})))
        return found[0] if found else None

    def list_images(self, q: ListQuery) -> list[ImageRecord]:
        query, params = _LISTED, {}
        for column, values in q.equal:
            if f"in_{column}" in params:  # the column again (?name=a&name=b): both must hold
                query = query.where(T_IMG.c[column].in_(values))
            else:
                query, params[f"in_{column}"] = query.where(_column_in(column)), list(values)
        for name, value in q.properties.items():
            query = query.where(exists().where(T_PROP.c.image_id == T_IMG.c.id,
                                               T_PROP.c.name == name, T_PROP.c.value == value))
        for tag in q.tags:
            query = query.where(exists().where(T_TAG.c.image_id == T_IMG.c.id,
                                               T_TAG.c.value == tag))
        if q.viewer is not None:
            query = query.where(q.viewer)
        if q.size_min is not None:
            query = query.where(T_IMG.c.size >= q.size_min)
        if q.size_max is not None:
            query = query.where(T_IMG.c.size <= q.size_max)
        ops = {"gt": "__gt__", "gte": "__ge__", "lt": "__lt__", "lte": "__le__",
               "eq": "__eq__", "neq": "__ne__"}
        for column, op, when in q.times:
            query = query.where(getattr(T_IMG.c[column], ops[op])(when))
        with self.engine.connect() as conn:
            if q.marker is not None:
                marker = conn.execute(_BY_ID, {"image_id": q.marker}).first()
                query = query.where(self._after(marker, q.sort))
            for key, direction in q.sort:
                expr = _sort_expr(key)
                query = query.order_by(expr.asc() if direction == "asc" else expr.desc())
            rows = list(conn.execute(query.limit(q.limit), params))
            return self._hydrate(conn, rows)

    @staticmethod
    def _after(marker: Row[Any] | None, sort: list[tuple[str, str]]) -> ColumnElement[bool]:
        """Keyset condition: rows strictly after `marker` in the `sort` order.

        Nested, `k1 > v1 OR (k1 = v1 AND (k2 > v2 OR (k2 = v2 AND ...)))`, built from the last
        key: each key appears twice, so the clause grows linearly with the keys. The flat
        form (`k1 > v1 OR (k1 = v1 AND k2 > v2) OR ...`, as oslo.db's paginate_query builds
        it) repeats every prefix and grew quadratically.
        """
        after: ColumnElement[bool] | None = None
        for key, direction in reversed(sort):
            expr, value = _sort_expr(key), _marker_value(marker, key)
            step = expr > value if direction == "asc" else expr < value
            after = step if after is None else or_(step, and_(expr == value, after))
        return after if after is not None else false()

    def exists_any(self, image_id: str) -> bool:
        """Is the id taken, even by a deleted image (ids are never reused, OSSN-0075)?"""
        with self.engine.connect() as conn:
            return conn.execute(_ID_TAKEN, {"image_id": image_id}).first() is not None

    def usage(self, owner: str | None, exclude_id: str) -> int:
        """Bytes stored for `owner` (size x active locations), not counting `exclude_id`."""
        owner_clause = T_IMG.c.owner.is_(None) if owner is None else T_IMG.c.owner == owner
        query = (select(func.coalesce(func.sum(T_IMG.c.size), 0))
                 .select_from(T_IMG.join(T_LOC, T_LOC.c.image_id == T_IMG.c.id))
                 .where(owner_clause, T_IMG.c.deleted.is_(False), T_IMG.c.id != exclude_id,
                        T_LOC.c.status == LOCATION_ACTIVE))
        with self.engine.connect() as conn:
            return int(conn.execute(query).scalar_one())

    # -- writing ---------------------------------------------------------------------------

    def create(self, columns: dict[str, Any], properties: dict[str, str],
               tags: Iterable[str]) -> None:
        try:
            with self.engine.begin() as conn:
                conn.execute(insert(T_IMG).values(**columns))
                self._write_props(conn, columns["id"], properties)
                for tag in dict.fromkeys(tags):
                    conn.execute(insert(T_TAG).values(image_id=columns["id"], value=tag))
        except SQLIntegrityError:
            raise Conflict(f"Image ID {columns['id']} already exists!") from None

    @staticmethod
    def _write_props(conn: Connection, image_id: str, properties: dict[str, str]) -> None:
        for name, value in properties.items():
            conn.execute(insert(T_PROP).values(image_id=image_id, name=name, value=value))

    @staticmethod
    def _bump(conn: Connection, image_id: str, expect_version: int | None,
              expect_status: str | None = None, **columns: Any) -> bool:
        """The UPDATE that opens every metadata write: version + 1 if the row is still the
        one the caller read (`expect_version`, `expect_status`); False if it changed."""
        query = update(T_IMG).where(T_IMG.c.id == image_id, T_IMG.c.deleted.is_(False))
        if expect_version is not None:
            query = query.where(T_IMG.c.version == expect_version)
        if expect_status is not None:
            query = query.where(T_IMG.c.status == expect_status)
        values = {**columns, "updated_at": utcnow(), "version": T_IMG.c.version + 1}
        return bool(conn.execute(query.values(**values)).rowcount == 1)

    def save(self, image_id: str, columns: dict[str, Any], properties: dict[str, str],
             tags: list[str] | None, expect_status: str | None = None,
             expect_version: int | None = None) -> bool:
        """Replace columns, the whole property set and (if given) tags in one transaction;
        False (nothing written) if the row's status or version is no longer the expected."""
        with self.engine.begin() as conn:
            if not self._bump(conn, image_id, expect_version, expect_status, **columns):
                return False
            conn.execute(delete(T_PROP).where(T_PROP.c.image_id == image_id))
            self._write_props(conn, image_id, properties)
            if tags is not None:
                conn.execute(delete(T_TAG).where(T_TAG.c.image_id == image_id))
                for tag in dict.fromkeys(tags):
                    conn.execute(insert(T_TAG).values(image_id=image_id, value=tag))
        return True

    def add_tag(self, image_id: str, tag: str, expect_version: int) -> bool:
        """Add `tag` if the image is still at `expect_version` (the caller checked the quota
        and that the tag is new against that version); False if it changed meanwhile."""
        with self.engine.begin() as conn:
            if not self._bump(conn, image_id, expect_version):
                return False
            conn.execute(insert(T_TAG).values(image_id=image_id, value=tag))
        return True

    def remove_tag(self, image_id: str, tag: str) -> bool:
        """Remove `tag`; False (nothing written) if the image or the tag is not there."""
        with self.engine.connect() as conn, conn.begin() as transaction:
            # The row first, as every metadata write: the same lock order as save(), and a
            # PATCH that read the tag set before this fails its compare-and-swap.
            if not self._bump(conn, image_id, None):
                return False
            if conn.execute(delete(T_TAG).where(T_TAG.c.image_id == image_id,
                                                T_TAG.c.value == tag)).rowcount != 1:
                transaction.rollback()
                return False
        return True

    def cas_status(self, image_id: str, expected: Status, new: Status,
                   unchanged: dict[str, Any] | None = None, **columns: Any) -> bool:
        """UPDATE images SET status=new ... WHERE id=? AND status=expected [AND each column of
        `unchanged` = its value]; True if it won.

        Only a change chute.images.status allows (ValueError otherwise): the machine is
        there, the atomicity here.
        """
        status.transition(expected, new)
        with self.engine.begin() as conn:
            return self._swap(conn, image_id, expected, new, columns, unchanged)

    @staticmethod
    def _swap(conn: Connection, image_id: str, expected: Status, new: Status,
              columns: dict[str, Any], unchanged: dict[str, Any] | None = None) -> bool:
        """The status CAS; `unchanged` adds columns that must still hold the given values."""
        query = update(T_IMG).where(T_IMG.c.id == image_id, T_IMG.c.status == expected,
                                    T_IMG.c.deleted.is_(False))
        for name, value in (unchanged or {}).items():
            query = query.where(T_IMG.c[name] == value)
        result = conn.execute(query.values(status=new, updated_at=utcnow(), **columns))
        return result.rowcount == 1

    def requeue(self, image_id: str, source: Status = REQUEUE.source) -> bool:
        """saving (or an import's uploading/importing) -> queued with size and hashes
        cleared: the upload left nothing behind."""
        return self.cas_status(image_id, source, QUEUED, **CLEARED)

    def activate(self, image_id: str, columns: dict[str, Any], location: StoredLocation,
                 unchanged: dict[str, Any] | None = None,
                 source: Status = ACTIVATE.source) -> bool:
        """saving (or importing) -> active with the upload's results and its location,
        atomically; only if the columns of `unchanged` (the formats the bytes were inspected
        as) still hold."""
        status.transition(source, ACTIVE)
        with self.engine.begin() as conn:
            if not self._swap(conn, image_id, source, ACTIVE, columns, unchanged):
                return False
            conn.execute(insert(T_LOC).values(image_id=image_id, url=location.url,
                                              metadata=location.metadata,
                                              status=LOCATION_ACTIVE, created_at=utcnow()))
        return True

    def update_columns(self, image_id: str, columns: dict[str, Any],
                       expect_status: Status) -> bool:
        """Write `columns` if the image is still `expect_status` (a staged upload's results
        while it stays `uploading`); False if it is not."""
        with self.engine.begin() as conn:
            return self._bump(conn, image_id, None, expect_status, **columns)

    def set_properties(self, image_id: str, properties: dict[str, str | None],
                       expect_version: int | None = None) -> bool:
        """Set (or, for None, remove) the properties chute itself writes (the import's
        `os_glance_*`), bumping the version so that a PATCH racing with it re-reads; with
        `expect_version`, only if the row is still that version (taking a copy's import lock:
        of two racing copies one wins)."""
        with self.engine.begin() as conn:
            if not self._bump(conn, image_id, expect_version):
                return False
            for name, value in properties.items():
                conn.execute(delete(T_PROP).where(T_PROP.c.image_id == image_id,
                                                  T_PROP.c.name == name))
                if value is not None:
                    conn.execute(insert(T_PROP).values(image_id=image_id, name=name,
                                                       value=value))
        return True

    def soft_delete(self, image_id: str) -> list[LocationRecord] | None:
        """Mark deleted from any status (id stays reserved) unless protected; returns the
        locations whose data must go, None if nothing was deleted (gone, or protected).

        `protected` is in the UPDATE's condition, not read before it: a PATCH to
        protected=true that committed first always wins, on SQLite and on PostgreSQL."""
        with self.engine.begin() as conn:
            now = utcnow()
            result = conn.execute(update(T_IMG).where(T_IMG.c.id == image_id,
                                                      T_IMG.c.deleted.is_(False),
                                                      T_IMG.c.protected.is_(False))
                                  .values(status=DELETED, deleted=True, deleted_at=now,
                                          updated_at=now))
            if result.rowcount != 1:
                return None
            locs = [LocationRecord(r.url, r.metadata, r.status) for r in conn.execute(
                select(T_LOC).where(T_LOC.c.image_id == image_id,
                                    T_LOC.c.status == LOCATION_ACTIVE))]
            conn.execute(update(T_LOC).where(T_LOC.c.image_id == image_id)
                         .values(status=LOCATION_DELETED))
        return locs

    # -- several stores (chute.images.stores_service) ---------------------------------------

    def add_location(self, image_id: str, location: StoredLocation,
                     verified: dict[str, Any]) -> bool:
        """Another copy of an active image's data (copy-image): recorded only while the image
        is still active with the size and digests the copy was verified against (`verified`),
        so a copy can never join an image whose data changed meanwhile."""
        with self.engine.begin() as conn:
            query = update(T_IMG).where(T_IMG.c.id == image_id, T_IMG.c.deleted.is_(False),
                                        T_IMG.c.status == ACTIVE)
            for name, value in verified.items():
                query = query.where(T_IMG.c[name] == value)
            bumped = conn.execute(query.values(updated_at=utcnow(),
                                               version=T_IMG.c.version + 1))
            if bumped.rowcount != 1:
                return False
            conn.execute(insert(T_LOC).values(image_id=image_id, url=location.url,
                                              metadata=location.metadata,
                                              status=LOCATION_ACTIVE, created_at=utcnow()))
        return True

    def remove_location(self, image_id: str, url: str) -> bool:
        """Mark one location of an active image deleted, only if another stays: the UPDATE
        of the image row first, so that two removals racing (one per store) are serialized
        and can never leave an active image without data. False if it would be the last."""
        try:
            with self.engine.begin() as conn:
                if not self._bump(conn, image_id, None, ACTIVE):
                    return False
                active = (T_LOC.c.image_id == image_id) & (T_LOC.c.status == LOCATION_ACTIVE)
                others = conn.execute(select(func.count()).select_from(T_LOC)
                                      .where(active, T_LOC.c.url != url)).scalar_one()
                if not others:
                    raise _LastLocation  # rolls the version bump back
                conn.execute(update(T_LOC).where(active, T_LOC.c.url == url)
                             .values(status=LOCATION_DELETED))
        except _LastLocation:
            return False
        return True

    @property
    def single_node(self) -> bool:
        """SQLite serves one API node, so every `saving` image at start is a crash's leftover."""
        return self.engine.dialect.name == "sqlite"

    def reset_saving(self, only: list[str] | None = None) -> list[str]:
        """Images a crash left in `saving` (all, or those in `only`) go back to `queued`."""
        query = select(T_IMG.c.id).where(T_IMG.c.status == REQUEUE.source,
                                         T_IMG.c.deleted.is_(False))
        if only is not None:
            query = query.where(T_IMG.c.id.in_(only))
        with self.engine.begin() as conn:
            ids = [r.id for r in conn.execute(query)]
            if ids:
                conn.execute(update(T_IMG)
                             .where(T_IMG.c.id.in_(ids), T_IMG.c.status == REQUEUE.source)
                             .values(status=REQUEUE.target, updated_at=utcnow(), **CLEARED))
        return ids

    def reset_importing(self, reason: str) -> list[str]:
        """Images a restart caught `importing` (the import ran in a thread of a worker that is
        gone) go back to `queued`, their import lock dropped and `reason` recorded."""
        with self.engine.connect() as conn:
            ids = [r.id for r in conn.execute(select(T_IMG.c.id).where(
                T_IMG.c.status == IMPORTING, T_IMG.c.deleted.is_(False)))]
        requeued = [i for i in ids if self.requeue(i, IMPORTING)]
        for image_id in requeued:
            self.set_properties(image_id, {IMPORT_LOCK: None, FAILED_IMPORT: reason})
        return requeued

    def in_flight_ids(self) -> list[str]:
        """Images whose data is being uploaded, staged or imported, or was by a node that
        died."""
        query = select(T_IMG.c.id).where(T_IMG.c.status.in_([SAVING, UPLOADING, IMPORTING]),
                                         T_IMG.c.deleted.is_(False))
        with self.engine.connect() as conn:
            return [r.id for r in conn.execute(query)]

    def copying_ids(self) -> list[str]:
        """Images whose data is at rest (active, deactivated) that hold an import lock
        (`os_glance_import_task`): a copy-image task is writing them into another store, or
        was, on a node that died."""
        query = (select(T_IMG.c.id).join(T_PROP, T_PROP.c.image_id == T_IMG.c.id)
                 .where(T_PROP.c.name == IMPORT_LOCK,
                        T_IMG.c.status.in_([ACTIVE, DEACTIVATED]), T_IMG.c.deleted.is_(False)))
        with self.engine.connect() as conn:
            return [r.id for r in conn.execute(query)]

    def queued_ids(self) -> list[str]:
        """Images that have no data yet (an upload may start, none has finished)."""
        query = select(T_IMG.c.id).where(T_IMG.c.status == QUEUED, T_IMG.c.deleted.is_(False))
        with self.engine.connect() as conn:
            return [r.id for r in conn.execute(query)]


CLEARED = {"size": None, "virtual_size": None, "checksum": None, "os_hash_algo": None,
           "os_hash_value": None, "chute_blake3_blocks": None}


class _LastLocation(Exception):
    """Raised inside a transaction to undo it: the location was the image's last."""


def _marker_value(marker: Row[Any] | None, key: str) -> Any:
    value = getattr(marker, key)
    if value is None and key in _NULLABLE_SORT:
        return _NULLABLE_SORT[key]
    return value
