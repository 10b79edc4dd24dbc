"""Fixtures of the compute tests (tests/compute/ and tests/compute/fetch/): the fetch world
of tests/helpers/fetch.py around the session's chute-api."""

from __future__ import annotations

import logging
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from chute.transfer import copy
from tests.helpers.fetch import FetchEnv, bind
from tests.helpers.services import ApiServer


@pytest.fixture
def fetch_env(shared_api: ApiServer, tmp_path: Path) -> Iterator[FetchEnv]:
    """The session's default chute-api, its store seen by this test's compute at `view`."""
    api = shared_api
    view = tmp_path / "view"
    bound = bind(Path(api.root) / "store", view)
    if not bound:
        view.symlink_to(Path(api.root) / "store", target_is_directory=True)
    copy.forget_refusals()
    env = FetchEnv(api, tmp_path, view, bound)
    yield env
    if bound:
        subprocess.run(["umount", str(view)], check=False)


@pytest.fixture
def fetch_log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """Records of chute.compute at INFO, as text lines."""
    caplog.set_level(logging.INFO, logger="chute.compute")
    return caplog
