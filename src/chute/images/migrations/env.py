"""Alembic environment: runs on the connection chute.images.db hands over (no alembic.ini)."""

from __future__ import annotations

from alembic import context

from chute.images.models import METADATA

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=METADATA,
                  render_as_batch=connection.dialect.name == "sqlite")
with context.begin_transaction():
    context.run_migrations()
