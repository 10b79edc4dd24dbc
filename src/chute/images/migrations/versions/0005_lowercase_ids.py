"""Image ids in lower case, the one canonical form chute.images.ids now stores.

Before it, an id given at create time was stored as sent: ids that differ only in case were
two images, and an id stored in upper case can no longer be reached, since every request's id
is lower-cased at the edge. Each such image moves to its lower-case id with its properties,
tags and locations: a copy of the row under the new id, the children repointed, the old row
removed (no foreign key needs to be deferrable, on SQLite or PostgreSQL).

Ids that collide once lower-cased: a deleted row only keeps its id from being reused, so a
deleted duplicate goes and the other row keeps the id; two live images that differ only in
case stop the migration with both ids named (an operator deletes one, then starts again).

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

CHILDREN = ("image_properties", "image_tags", "image_locations")


def upgrade() -> None:
    bind = op.get_bind()
    meta = sa.MetaData()
    images = sa.Table("images", meta, autoload_with=bind)
    children = [sa.Table(name, meta, autoload_with=bind) for name in CHILDREN]
    upper = bind.execute(sa.select(images.c.id).where(images.c.id != sa.func.lower(images.c.id))
                         .order_by(images.c.id)).scalars().all()
    for old_id in upper:
        new_id = old_id.lower()
        old_deleted = _deleted(bind, images, old_id)
        new_deleted = _deleted(bind, images, new_id)
        if new_deleted is None:
            _move(bind, images, children, old_id, new_id)
        elif old_deleted:
            _remove(bind, images, children, old_id)
        elif new_deleted:
            _remove(bind, images, children, new_id)
            _move(bind, images, children, old_id, new_id)
        else:
            raise RuntimeError(f"images {old_id} and {new_id} differ only in case and neither "
                               "is deleted: ids are now compared in lower case; delete one of "
                               "them, then start the service again")


def _deleted(bind: sa.Connection, images: sa.Table, image_id: str) -> bool | None:
    """Whether the row is deleted; None when there is no such row."""
    row = bind.execute(sa.select(images.c.deleted).where(images.c.id == image_id)).first()
    return None if row is None else bool(row.deleted)


def _move(bind: sa.Connection, images: sa.Table, children: list[sa.Table], old_id: str,
          new_id: str) -> None:
    others = [column for column in images.c if column.name != "id"]
    bind.execute(images.insert().from_select(
        ["id", *(column.name for column in others)],
        sa.select(sa.literal(new_id), *others).where(images.c.id == old_id)))
    for child in children:
        bind.execute(child.update().where(child.c.image_id == old_id).values(image_id=new_id))
    bind.execute(images.delete().where(images.c.id == old_id))


def _remove(bind: sa.Connection, images: sa.Table, children: list[sa.Table],
            image_id: str) -> None:
    for child in children:
        bind.execute(child.delete().where(child.c.image_id == image_id))
    bind.execute(images.delete().where(images.c.id == image_id))


def downgrade() -> None:
    """Nothing to undo: lower-case ids are valid ids of the revision before."""
