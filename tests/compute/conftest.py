"""Fixtures of the compute tests (tests/compute/ and tests/compute/fetch/): the fetch world
of tests/helpers/fetch.py around the session's chute-api."""

from __future__ import annotations

import logging
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from chute.transfer import copy
from tests.helpers.fetch import FetchEnv, bind
from tests.helpers.images import upload_image
from tests.helpers.services import ApiServer, ComputeServer, prepare_compute


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


@pytest.fixture(scope="module")
def booting(shared_api: ApiServer, tmp_path_factory: pytest.TempPathFactory
            ) -> Iterator[tuple[ComputeServer, str]]:
    """(a chute-compute on the session's chute-api, an active 1 MiB raw image) shared by the
    tests of one module that boot servers and look at their documents."""
    root = tmp_path_factory.mktemp("booting")
    compute = prepare_compute(root, shared_api).start()
    image = upload_image(shared_api, os.urandom(1 << 20))
    yield compute, image["id"]
    compute.kill()
