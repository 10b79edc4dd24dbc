"""image_tasks: the imports of an image as Glance's tasks (`GET /v2/images/{id}/tasks`).

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "image_tasks",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("image_id", sa.String(36), sa.ForeignKey("images.id"), nullable=False),
        sa.Column("type", sa.String(30), nullable=False),
        sa.Column("status", sa.String(30), nullable=False),
        sa.Column("owner", sa.String(255)),
        sa.Column("user_id", sa.String(64)),
        sa.Column("request_id", sa.String(64)),
        sa.Column("input", sa.JSON),
        sa.Column("result", sa.JSON),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("updated_at", sa.DateTime, nullable=False),
        sa.Column("expires_at", sa.DateTime),
    )
    op.create_index("ix_image_tasks_image_id", "image_tasks", ["image_id"])


def downgrade() -> None:
    op.drop_index("ix_image_tasks_image_id", "image_tasks")
    op.drop_table("image_tasks")
