"""Tables of the image registry (the Alembic migrations create exactly these).

Plain SQLAlchemy Core `Table`s, not ORM classes: db.py only ever builds Core statements, and
declaring the tables through `sqlalchemy.orm.DeclarativeBase` imported the whole ORM (5.6 MiB
of RSS) into every chute-api worker for nothing.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from chute.images.status import LOCATION_ACTIVE

METADATA = MetaData()

IMAGES = Table(
    "images", METADATA,
    Column("id", String(36), primary_key=True),
    Column("name", String(255)),
    Column("status", String(30), nullable=False),
    Column("visibility", String(20), nullable=False),
    Column("protected", Boolean, nullable=False, default=False),
    Column("os_hidden", Boolean, nullable=False, default=False),
    Column("checksum", String(32)),
    Column("os_hash_algo", String(64)),
    Column("os_hash_value", String(128)),
    Column("chute_blake3_blocks", String(64)),
    Column("size", BigInteger),
    Column("virtual_size", BigInteger),
    Column("min_disk", Integer, nullable=False, default=0),
    Column("min_ram", Integer, nullable=False, default=0),
    Column("disk_format", String(20)),
    Column("container_format", String(20)),
    Column("owner", String(255)),
    Column("created_at", DateTime, nullable=False),
    Column("updated_at", DateTime, nullable=False),
    Column("deleted", Boolean, nullable=False, default=False),
    Column("deleted_at", DateTime),
    # Bumped by every metadata write: the optimistic compare-and-swap token (migration 0003).
    Column("version", Integer, nullable=False, default=0, server_default="0"),
    Index("ix_images_deleted_created", "deleted", "created_at"),
    Index("ix_images_name", "name"),
    Index("ix_images_status", "status"),
    Index("ix_images_owner", "owner"),
)

IMAGE_PROPERTIES = Table(
    "image_properties", METADATA,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("image_id", ForeignKey("images.id"), nullable=False),
    Column("name", String(255), nullable=False),
    Column("value", Text, nullable=False),
    UniqueConstraint("image_id", "name", name="uq_image_properties"),
    Index("ix_image_properties_name_value", "name", "value"),
)

IMAGE_TAGS = Table(
    "image_tags", METADATA,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("image_id", ForeignKey("images.id"), nullable=False),
    Column("value", String(255), nullable=False),
    UniqueConstraint("image_id", "value", name="uq_image_tags"),
)

IMAGE_LOCATIONS = Table(
    "image_locations", METADATA,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("image_id", ForeignKey("images.id"), nullable=False),
    Column("url", Text, nullable=False),
    Column("metadata", JSON, nullable=False, default=dict),
    Column("status", String(30), nullable=False, default=LOCATION_ACTIVE),
    Column("created_at", DateTime, nullable=False),
    Index("ix_image_locations_image_id", "image_id"),
)

# Who an image is shared with (Glance's image_members): a project id and its answer.
IMAGE_MEMBERS = Table(
    "image_members", METADATA,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("image_id", ForeignKey("images.id"), nullable=False),
    Column("member", String(255), nullable=False),
    Column("status", String(20), nullable=False),
    Column("created_at", DateTime, nullable=False),
    Column("updated_at", DateTime, nullable=False),
    UniqueConstraint("image_id", "member", name="uq_image_members"),
    Index("ix_image_members_member", "member", "status"),
)

# Glance's tasks and task_info in one table: chute records only its imports (`api_image_import`).
IMAGE_TASKS = Table(
    "image_tasks", METADATA,
    Column("id", String(36), primary_key=True),
    Column("image_id", ForeignKey("images.id"), nullable=False),
    Column("type", String(30), nullable=False),
    Column("status", String(30), nullable=False),
    Column("owner", String(255)),
    Column("user_id", String(64)),
    Column("request_id", String(64)),
    Column("input", JSON),
    Column("result", JSON),
    Column("message", Text, nullable=False),
    Column("created_at", DateTime, nullable=False),
    Column("updated_at", DateTime, nullable=False),
    Column("expires_at", DateTime),
    Index("ix_image_tasks_image_id", "image_id"),
)
