"""chute_blake3 -> chute_blake3_blocks, emptied: the digest changed definition.

The column now holds the `blake3-blocks` digest (chute.transfer.hashing), which can skip holes
and use every core. An old value is plain BLAKE3 of the stream, a different number for the
same bytes, and recomputing it would mean reading every image here; so the values are cleared
and those images are verified by their os_hash_value (or checksum) as before chute_blake3
existed. Images uploaded from now on get the new digest.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def _rename(old: str, new: str) -> None:
    # In place (ALTER TABLE ... RENAME COLUMN, SQLite >= 3.25 and PostgreSQL), not by Alembic's
    # batch copy: the copy drops `images`, which image_properties/tags/locations reference,
    # and with chute's PRAGMA foreign_keys=ON that DROP fails once any image has a property
    # (tests/images/test_image_migrations.py); the pragma cannot be switched off inside the
    # migration's transaction.
    with op.batch_alter_table("images", recreate="never") as batch:
        batch.alter_column(old, new_column_name=new, existing_type=sa.String(64))
    op.execute(sa.text(f"UPDATE images SET {new} = NULL"))


def upgrade() -> None:
    _rename("chute_blake3", "chute_blake3_blocks")


def downgrade() -> None:
    _rename("chute_blake3_blocks", "chute_blake3")
