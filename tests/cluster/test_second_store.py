"""#13 across namespaced hosts: an image copied to a second store boots by direct copy on a
host that mounts only that store, at its own path, and cannot see the first store at all."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from tests.helpers.images import JSON, show, upload_image
from tests.helpers.netns import HostCompute, add_host, prepare_api_on, run_on, topology
from tests.helpers.polling import wait_for
from tests.helpers.servers import boot_and_wait
from tests.helpers.services import ApiServer
from tests.helpers.stores import datadir, fs_id, store_sections


@pytest.fixture(scope="module")
def rack2_host(tmp_path_factory: pytest.TempPathFactory
               ) -> Iterator[tuple[ApiServer, HostCompute]]:
    """chute-api with stores rack1 (default) and rack2 on the bridge; one host mounting only
    rack2's filesystem."""
    root = tmp_path_factory.mktemp("second-store")
    with topology() as topo:
        (root / "api").mkdir()
        api = prepare_api_on(topo, root / "api", **store_sections(root / "api",
                                                                  ("rack1", "rack2")))
        api.datadir = datadir(api, "rack1")
        host = add_host(topo, api, root / "hosts", "r2",
                        filesystems={fs_id("rack2"): api.root / "rack2"})
        try:
            api.start()
            host.start()
            yield api, host
        finally:
            host.kill()
            api.kill()


def test_an_image_copied_to_rack2_boots_by_file_on_a_host_mounting_only_rack2(rack2_host):
    api, host = rack2_host
    assert host.host is not None and host.mountpoint is not None
    image = upload_image(api, b"\x5a" * (1 << 20))
    assert image["stores"] == "rack1"
    assert run_on(host.host, "ls", str(datadir(api, "rack1"))).returncode != 0  # unseen
    copy = requests.post(f"{api.url}/v2/images/{image['id']}/import", headers=JSON, timeout=30,
                         json={"method": {"name": "copy-image"}, "stores": ["rack2"]})
    assert copy.status_code == 202, copy.text
    wait_for(lambda: show(api, image["id"])["stores"] == "rack1,rack2", 30, "the copy")

    server = boot_and_wait(host, image["id"])

    assert server["status"] == "ACTIVE", server
    log = host.log_text()
    assert f"Copied {host.mountpoint / 'images' / image['id']} using file (" in log, log
    assert "Successfully transferred using file" in log
    assert "using http" not in log


