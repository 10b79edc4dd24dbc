"""Fixtures of the fetch tests."""

from __future__ import annotations

import pytest

from chute.compute import image_service


@pytest.fixture
def quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """Retries of the HTTP fetch after 50 ms rather than the production delay."""
    monkeypatch.setattr(image_service, "RETRY_DELAY", 0.05)
