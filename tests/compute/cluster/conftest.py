"""One compute API + three agents on the session's chute-api, shared by a module's tests; the
compute database is SQLite, or PostgreSQL with --db-backend=postgresql (tests/conftest.py)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

import pytest

from tests.helpers.cluster import Cluster, start_cluster
from tests.helpers.images import upload_image
from tests.helpers.services import ApiServer


@pytest.fixture(scope="module")
def cluster(shared_api: ApiServer, tmp_path_factory: pytest.TempPathFactory,
            database_url: Callable[[], str]) -> Iterator[Cluster]:
    found = start_cluster(tmp_path_factory.mktemp("cluster"), shared_api, database=database_url())
    yield found
    found.stop()


@pytest.fixture(scope="module")
def image_id(shared_api: ApiServer) -> str:
    return str(upload_image(shared_api, os.urandom(1 << 20))["id"])
