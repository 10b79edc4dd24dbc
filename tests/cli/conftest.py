"""Fixtures of the CLI tests."""

from __future__ import annotations

import pytest


@pytest.fixture
def stack(shared_api, start_compute):
    """An image service and a compute agent that shares its store (direct copies)."""
    return shared_api, start_compute(shared_api)
