"""Fixtures of the client matrix: one chute-api and chute-compute pair per module, and the
clouds.yaml the README gives (auth_type none, endpoint overrides: no Keystone)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers.services import ApiServer, ComputeServer, prepare_api, prepare_compute


@dataclass(frozen=True)
class Cloud:
    api: ApiServer
    compute: ComputeServer
    root: Path

    @property
    def clouds_yaml(self) -> Path:
        return self.root / "clouds.yaml"

    def env(self) -> dict[str, str]:
        """What a client process sees: this clouds.yaml and nothing of the caller's."""
        return {"HOME": str(self.root), "OS_CLIENT_CONFIG_FILE": str(self.clouds_yaml),
                "PATH": "/usr/bin:/bin", "LC_ALL": "C.UTF-8"}


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cloud]:
    root = tmp_path_factory.mktemp("clients")
    api = prepare_api(tmp_path_factory.mktemp("clients-api")).start()
    compute = prepare_compute(tmp_path_factory.mktemp("clients-compute"), api).start()
    (root / "clouds.yaml").write_text(
        "clouds:\n  chute:\n    auth_type: none\n    auth:\n"
        f"      endpoint: {compute.url}\n"
        f"    compute_endpoint_override: {compute.url}/v2.1\n"
        f"    image_endpoint_override: {api.url}\n")
    yield Cloud(api, compute, root)
    compute.kill()
    api.kill()
