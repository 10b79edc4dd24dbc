"""image_members: the projects a shared image is shared with, and whether they accepted.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "image_members",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("image_id", sa.String(36), sa.ForeignKey("images.id"), nullable=False),
        sa.Column("member", sa.String(255), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("updated_at", sa.DateTime, nullable=False),
        sa.UniqueConstraint("image_id", "member", name="uq_image_members"),
    )
    op.create_index("ix_image_members_member", "image_members", ["member", "status"])


def downgrade() -> None:
    op.drop_index("ix_image_members_member", "image_members")
    op.drop_table("image_members")
