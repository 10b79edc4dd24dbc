"""Fixtures of the libvirt tests: libvirtd itself (installed and started if needed), the
marker guest images in the session's chute-api, and chute-compute agents with the libvirt
driver (qemu/TCG), whose domains are removed when the test is over."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.guests import build
from tests.helpers import libvirt as lv
from tests.helpers.images import upload_image
from tests.helpers.services import ApiServer, ComputeServer, prepare_compute

# Short waits: the marker guest ignores ACPI, so a clean shutdown never comes.
LIBVIRT_AGENT: dict[str, dict[str, Any]] = {
    "DEFAULT": {"compute_driver": "libvirt", "shutdown_timeout": 1,
                "sync_power_state_interval": 2},
    "libvirt": {"virt_type": "qemu", "wait_soft_reboot_seconds": 1},
}


@pytest.fixture(scope="session")
def libvirtd() -> None:
    lv.ensure_libvirtd()


def _upload(api: ApiServer, name: str, data: Path) -> str:
    return str(upload_image(api, data, disk_format="raw", name=name)["id"])


@pytest.fixture(scope="session")
def marker_image(shared_api: ApiServer, tmp_path_factory: pytest.TempPathFactory) -> str:
    tmp = tmp_path_factory.mktemp("marker")
    return _upload(shared_api, "marker", build.marker(tmp / "marker.raw"))


@pytest.fixture(scope="session")
def poweroff_image(shared_api: ApiServer, tmp_path_factory: pytest.TempPathFactory) -> str:
    tmp = tmp_path_factory.mktemp("marker-poweroff")
    return _upload(shared_api, "marker-poweroff",
                   build.marker(tmp / "poweroff.raw", poweroff=True))


@pytest.fixture
def start_virt_compute(libvirtd: None, shared_api: ApiServer,
                       tmp_path_factory: pytest.TempPathFactory
                       ) -> Iterator[Callable[..., ComputeServer]]:
    """`start_virt_compute(**overrides)`: a libvirt agent on the session's chute-api; at
    teardown it is killed and every domain it defined is destroyed and undefined."""
    servers: list[ComputeServer] = []

    def start(**overrides: dict[str, Any]) -> ComputeServer:
        sections = {name: dict(options) for name, options in LIBVIRT_AGENT.items()}
        for name, options in overrides.items():
            sections.setdefault(name, {}).update(options)
        server = prepare_compute(tmp_path_factory.mktemp("virt"), shared_api, **sections)
        servers.append(server)
        return server.start()

    yield start
    for server in servers:
        server.kill()
        lv.remove_domains(server.instances_path)


@pytest.fixture(scope="module")
def virt_compute(libvirtd: None, shared_api: ApiServer,
                 tmp_path_factory: pytest.TempPathFactory) -> Iterator[ComputeServer]:
    """One libvirt agent shared by a module's tests."""
    server = prepare_compute(tmp_path_factory.mktemp("virt-shared"), shared_api,
                             **LIBVIRT_AGENT)
    server.start()
    yield server
    server.kill()
    lv.remove_domains(server.instances_path)


@pytest.fixture(scope="session")
def linux_image(shared_api: ApiServer) -> str:
    """The small Linux guest (built from Debian packages once, then from the cache)."""
    return _upload(shared_api, "linux", build.linux())
