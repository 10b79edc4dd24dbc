"""#13 acceptance: an image copied to a second store boots by direct copy on a host that mounts
only that store. Real processes: a chute-api with two filesystem stores (rack1, the default,
and rack2), and a standalone chute-compute whose `[image_file_url]` lists only rack2's
filesystem."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import pytest
import requests

from tests.helpers.images import JSON, show, upload_image
from tests.helpers.polling import wait_for
from tests.helpers.servers import boot_and_wait, transfers_logged
from tests.helpers.services import BIN, ApiServer
from tests.helpers.stores import datadir, fs_id, prepare_stores_api


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    server = prepare_stores_api(tmp_path_factory.mktemp("stores-boot-api")).start()
    yield server
    server.kill()


def copied_to_rack2(api: ApiServer, image_id: str) -> dict:
    resp = requests.post(f"{api.url}/v2/images/{image_id}/import", headers=JSON, timeout=30,
                         json={"method": {"name": "copy-image"}, "stores": ["rack2"]})
    assert resp.status_code == 202, resp.text
    return wait_for(lambda: (doc := show(api, image_id))["stores"] == "rack1,rack2"
                    and "os_glance_import_task" not in doc and doc, 30, "the copy to rack2")


def rack2_only(api: ApiServer) -> dict:
    """The compute overrides: this host mounts rack2's filesystem only."""
    return {"image_file_url": {"filesystems": "rack2"},
            "image_file_url:shared": None,
            "image_file_url:rack2": {"id": fs_id("rack2"), "mountpoint": str(api.root / "rack2")}}


def test_an_image_copied_to_a_second_store_boots_by_direct_copy_from_it(api, start_compute,
                                                                        raw_image):
    image = upload_image(api, raw_image)
    assert image["stores"] == "rack1"
    copied_to_rack2(api, image["id"])
    compute = start_compute(api, **rack2_only(api))

    server = boot_and_wait(compute, image["id"])

    assert server["status"] == "ACTIVE", server
    log = compute.log_text()
    assert f"Copied {datadir(api, 'rack2') / image['id']} using file (" in log
    assert "Successfully transferred using file" in log
    assert "using http" not in log and transfers_logged(compute) == 1
    # rack2's location was tried first: rack1's (not mounted here) was never refused.
    assert str(datadir(api, "rack1") / image["id"]) not in log


def test_explain_says_which_store_it_would_copy_from_and_why(api, start_compute, raw_image):
    image = upload_image(api, raw_image)
    copied_to_rack2(api, image["id"])
    compute = start_compute(api, **rack2_only(api))
    report = subprocess.run([str(BIN / "chute-compute"), "--config-file",
                             str(compute.conf_path), "explain", image["id"]],
                            capture_output=True, text=True, timeout=60, check=True).stdout
    assert f"store rack2, filesystem {fs_id('rack2')}: mounted here at " in report
    assert f"store rack1, filesystem {fs_id('rack1')}: not mounted here" in report
    assert report.index("store rack2") < report.index("store rack1")
    assert f"A fetch would copy {datadir(api, 'rack2') / image['id']} directly." in report


def test_a_host_that_mounts_only_the_store_without_the_image_fetches_over_http(
        api, start_compute, raw_image):
    image = upload_image(api, raw_image)  # in rack1 only
    compute = start_compute(api, **rack2_only(api))

    server = boot_and_wait(compute, image["id"])

    assert server["status"] == "ACTIVE", server
    log = compute.log_text()
    assert f"filesystem id '{fs_id('rack1')}' is not configured here" in log
    assert "Successfully transferred using http" in log
