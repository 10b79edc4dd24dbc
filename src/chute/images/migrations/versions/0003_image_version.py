"""images.version: a counter every metadata write bumps, for optimistic compare-and-swap.

A PATCH rewrites the whole property set and a tag PUT checks the quota against the tags it
read; both were conditional only on `status`, so concurrent writers silently lost each other's
changes or exceeded the tag quota. Each metadata write is now `UPDATE ... WHERE version = :seen
SET version = version + 1` (chute.images.db), which is atomic on SQLite and on PostgreSQL.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("images", sa.Column("version", sa.Integer, nullable=False,
                                      server_default="0"))


def downgrade() -> None:
    # In place (SQLite >= 3.35, PostgreSQL): a batch copy would drop `images`, which the
    # other tables reference (see 0002).
    with op.batch_alter_table("images", recreate="never") as batch:
        batch.drop_column("version")
