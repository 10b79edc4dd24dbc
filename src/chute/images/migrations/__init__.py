"""Alembic migrations of the image registry, shipped inside the package and run at start."""
