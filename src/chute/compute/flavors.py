"""Flavors: the classic Nova table, fixed in code, and the ones an admin adds.

The five flavors Nova seeded until Newton (docs/architecture.md#nova-flavors) are what clients
and scripts written for Nova expect to find (`--flavor 2` = m1.small): they are built in,
public and cannot be deleted. An admin adds others (`POST /flavors`, Nova's
os-flavor-manage) and grants projects access to the private ones (os-flavor-access); those
live in the agent's state database beside its instances, whose only reader is this process.

`get` and `all_flavors` are module functions because the manager, the views and the virt
driver all look flavors up by id; `open_catalog` points them at the state database once, when
the manager is built (one agent process, one state database).
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass

from sqlalchemy import (
    Boolean,
    Column,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    delete,
    insert,
    select,
)
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError as SQLIntegrityError

from chute.compute.db import create_tables
from chute.errors import ComputeConflict, ComputeForbidden, ComputeNotFound, FlavorNotFound


@dataclass(frozen=True)
class Flavor:
    id: str
    name: str
    vcpus: int
    ram: int  # MiB
    disk: int  # root disk, GiB
    is_public: bool = True
    description: str | None = None

    @property
    def root_bytes(self) -> int:
        return self.disk << 30


FLAVORS: dict[str, Flavor] = {
    f.id: f
    for f in (
        Flavor("1", "m1.tiny", 1, 512, 1),
        Flavor("2", "m1.small", 1, 2048, 20),
        Flavor("3", "m1.medium", 2, 4096, 40),
        Flavor("4", "m1.large", 4, 8192, 80),
        Flavor("5", "m1.xlarge", 8, 16384, 160),
    )
}

# Nova's flavor id pattern (nova/api/validation/parameter_types.py `flavor_id`).
ID_PATTERN = re.compile(r"^(?! )[a-zA-Z0-9. _-]+(?<! )$")

_metadata = MetaData()
custom_flavors = Table(
    "flavors", _metadata,
    Column("id", String(255), primary_key=True),
    Column("name", String(255), nullable=False, unique=True),
    Column("vcpus", Integer, nullable=False),
    Column("ram", Integer, nullable=False),
    Column("disk", Integer, nullable=False),
    Column("is_public", Boolean, nullable=False),
    Column("description", Text),
)
flavor_projects = Table(
    "flavor_projects", _metadata,
    Column("flavor_id", String(255), primary_key=True),
    Column("project_id", String(255), primary_key=True),
)


class Catalog:
    """The admin's flavors in the state database (the built-in ones are never stored)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        create_tables(engine, _metadata)

    def find(self, flavor_id: str) -> Flavor | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(custom_flavors)
                               .where(custom_flavors.c.id == flavor_id)).first()
        return _from_row(row) if row is not None else None

    def all(self) -> list[Flavor]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(custom_flavors).order_by(custom_flavors.c.id)).all()
        return [_from_row(row) for row in rows]

    def create(self, flavor: Flavor) -> Flavor:
        if flavor.id in FLAVORS:
            raise ComputeConflict(f"Flavor with ID {flavor.id} already exists.")
        if any(f.name == flavor.name for f in FLAVORS.values()):
            raise ComputeConflict(f"Flavor with name {flavor.name} already exists.")
        with self.engine.begin() as conn:
            if conn.execute(select(custom_flavors.c.id)
                            .where(custom_flavors.c.name == flavor.name)).first():
                raise ComputeConflict(f"Flavor with name {flavor.name} already exists.")
            try:
                conn.execute(insert(custom_flavors).values(
                    id=flavor.id, name=flavor.name, vcpus=flavor.vcpus, ram=flavor.ram,
                    disk=flavor.disk, is_public=flavor.is_public,
                    description=flavor.description))
            except SQLIntegrityError:
                raise ComputeConflict(f"Flavor with ID {flavor.id} already exists.") from None
        return flavor

    def delete(self, flavor_id: str) -> None:
        if flavor_id in FLAVORS:
            raise ComputeForbidden(f"Flavor {flavor_id} is one of chute's built-in flavors "
                                   "and cannot be deleted.")
        with self.engine.begin() as conn:
            gone = conn.execute(delete(custom_flavors)
                                .where(custom_flavors.c.id == flavor_id)).rowcount
            conn.execute(delete(flavor_projects).where(flavor_projects.c.flavor_id == flavor_id))
        if gone != 1:
            raise FlavorNotFound(f"Flavor {flavor_id} could not be found.")

    def projects(self, flavor_id: str) -> list[str]:
        """The projects allowed a private flavor (Nova: 404 for a public one)."""
        flavor = get(flavor_id)
        if flavor.is_public:
            raise ComputeNotFound("Access list not available for public flavors.")
        with self.engine.connect() as conn:
            rows = conn.execute(select(flavor_projects.c.project_id)
                                .where(flavor_projects.c.flavor_id == flavor_id)
                                .order_by(flavor_projects.c.project_id)).all()
        return [row.project_id for row in rows]

    def add_project(self, flavor_id: str, project_id: str) -> None:
        if get(flavor_id).is_public:
            raise ComputeConflict("Can not add access to a public flavor.")
        try:
            with self.engine.begin() as conn:
                conn.execute(insert(flavor_projects).values(flavor_id=flavor_id,
                                                            project_id=project_id))
        except SQLIntegrityError:
            raise ComputeConflict(f"Flavor access already exists for flavor {flavor_id} and "
                                  f"project {project_id} combination.") from None

    def remove_project(self, flavor_id: str, project_id: str) -> None:
        get(flavor_id)
        with self.engine.begin() as conn:
            gone = conn.execute(delete(flavor_projects).where(
                flavor_projects.c.flavor_id == flavor_id,
                flavor_projects.c.project_id == project_id)).rowcount
        if gone != 1:
            raise ComputeNotFound(f"Flavor access not found for {flavor_id} / {project_id} "
                                  "combination.")


def _from_row(row: object) -> Flavor:
    return Flavor(row.id, row.name, row.vcpus, row.ram, row.disk,  # type: ignore[attr-defined]
                  bool(row.is_public), row.description)  # type: ignore[attr-defined]


_catalog: Catalog | None = None


def open_catalog(engine: Engine) -> Catalog:
    """Point `get` and `all_flavors` at this state database (done once, by the manager)."""
    global _catalog
    _catalog = Catalog(engine)
    return _catalog


def catalog() -> Catalog:
    if _catalog is None:
        raise RuntimeError("flavors.open_catalog was not called")
    return _catalog


def new_id() -> str:
    """Nova's id for a flavor created without one (or with `"id": null`/`"auto"`)."""
    return str(uuid.uuid4())


def find(flavor_id: str) -> Flavor | None:
    return FLAVORS.get(flavor_id) or (_catalog.find(flavor_id) if _catalog else None)


def get(flavor_ref: str) -> Flavor:
    """Look a flavor up by id; a flavorRef may also be a URL ending in the id, as in Nova."""
    flavor_id = str(flavor_ref).rstrip("/").rsplit("/", 1)[-1]
    found = find(flavor_id)
    if found is None:
        raise FlavorNotFound(f"Flavor {flavor_id} could not be found.")
    return found


def all_flavors() -> list[Flavor]:
    return list(FLAVORS.values()) + (_catalog.all() if _catalog else [])
