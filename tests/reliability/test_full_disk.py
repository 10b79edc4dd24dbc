"""Full filesystems: the image store and the compute host's image cache on a 16 MiB tmpfs.

A full store answers 413 and keeps nothing; a full cache fails the boot with a fault that says
so and keeps nothing half-written in `_base`. Both services go on serving.
"""

from __future__ import annotations

import os

import pytest
import requests

from tests.helpers.disks import write_random_file
from tests.helpers.faults import MiB, free_bytes, small_tmpfs
from tests.helpers.images import JSON, create, show, store_files, upload, upload_image
from tests.helpers.servers import base_dir, boot, wait_built

FS_SIZE = "16m"


@pytest.fixture
def small_fs(tmp_path):
    with small_tmpfs(tmp_path / "small", FS_SIZE) as path:
        yield path


def _chunked(path, chunk: int = MiB):
    with open(path, "rb") as data:
        while block := data.read(chunk):
            yield block


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_upload_larger_than_the_free_space_is_413_and_leaves_nothing(start_api, small_fs,
                                                                     tmp_path, framing):
    # The database stays off the small filesystem, so its free space measures the store alone.
    api = start_api(glance_store={"filesystem_store_datadir": str(small_fs / "images")},
                    database={"connection": f"sqlite:///{tmp_path / 'api.sqlite'}"})
    big = write_random_file(tmp_path / "big.raw", 24 * MiB, "full-store")
    free_before = free_bytes(small_fs)
    image_id = create(api)["id"]
    url = f"{api.url}/v2/images/{image_id}/file"
    headers = {"Content-Type": "application/octet-stream", **JSON}
    if framing == "chunked":
        resp = requests.put(url, data=_chunked(big), headers=headers, timeout=60)
    else:
        resp = upload(api, image_id, big, timeout=120)
    assert resp.status_code == 413, resp.text
    assert "full" in resp.json()["message"].lower(), resp.text
    image = show(api, image_id)
    assert image["status"] == "queued" and image["size"] is None, image
    assert store_files(api) == [], store_files(api)
    assert free_bytes(small_fs) == free_before, "the failed upload still holds space"
    # The service keeps serving: a listing, and a small upload to the same image.
    assert requests.get(api.url + "/v2/images", headers=JSON, timeout=10).status_code == 200
    small = write_random_file(tmp_path / "small.raw", 2 * MiB, "full-store-small")
    assert upload(api, image_id, small, timeout=120).status_code == 204
    assert show(api, image_id)["status"] == "active"
    print(f"\nRELIABILITY full-disk: 24 MiB upload ({framing}) to a {FS_SIZE} store -> 413, "
          "nothing left, a 2 MiB upload then succeeded")


@pytest.mark.parametrize("path", ["direct", "http"])
def test_boot_with_the_image_cache_on_a_full_filesystem_fails_cleanly(start_api, start_compute,
                                                                      small_fs, tmp_path, path):
    api = start_api(DEFAULT={"workers": 1})
    image = upload_image(api, write_random_file(tmp_path / "big.raw", 24 * MiB, "full-cache"))
    overrides = {"DEFAULT": {"instances_path": str(small_fs)}}
    if path == "http":
        overrides["glance"] = {"allowed_direct_url_schemes": ""}
    compute = start_compute(api, **overrides)
    done = wait_built(compute, boot(compute, image["id"])["id"])
    assert done["status"] == "ERROR", done
    fault = done["fault"]["message"]
    assert "No space left on device" in fault, fault
    assert "Unexpected" not in fault, f"the fault reads as a crash, not a full disk: {fault}"
    leftovers = [n for n in os.listdir(base_dir(compute)) if not n.endswith(".lock")]
    assert leftovers == [], f"half-written files in _base: {leftovers}"
    # The agent keeps serving, and a boot of an image that fits works.
    small = upload_image(api, write_random_file(tmp_path / "small.raw", 2 * MiB, "fits"))
    assert wait_built(compute, boot(compute, small["id"])["id"])["status"] == "ACTIVE"
    print(f"\nRELIABILITY full-disk: {path} fetch of 24 MiB into a {FS_SIZE} cache -> ERROR "
          f"({fault!r}), _base clean, a 2 MiB image then booted")


def test_instance_disk_on_a_full_filesystem_fails_cleanly(start_api, start_compute, small_fs,
                                                          tmp_path):
    """The base fits, the raw copy of it for the instance does not."""
    api = start_api(DEFAULT={"workers": 1})
    image = upload_image(api, write_random_file(tmp_path / "mid.raw", 10 * MiB, "full-disk"))
    compute = start_compute(api, DEFAULT={"instances_path": str(small_fs)},
                            libvirt={"images_type": "raw"})
    done = wait_built(compute, boot(compute, image["id"])["id"])
    assert done["status"] == "ERROR", done
    fault = done["fault"]["message"]
    assert "No space left on device" in fault, fault
    assert "Unexpected" not in fault, f"the fault reads as a crash, not a full disk: {fault}"
    disk_dir = small_fs / done["id"]
    assert not disk_dir.exists() or sorted(os.listdir(disk_dir)) == [], os.listdir(disk_dir)
    print(f"\nRELIABILITY full-disk: raw instance disk of 10 MiB on a full {FS_SIZE} "
          f"filesystem -> ERROR ({fault!r}), no partial disk")


def test_cli_download_onto_a_full_filesystem_fails_and_leaves_nothing(start_api, small_fs,
                                                                      tmp_path):
    """The download's writes happen in a background thread: its ENOSPC must still end the
    download, with the temporary file removed and nothing under the requested name."""
    import errno
    import io

    from chute.client.download import download_image
    from chute.client.image import Image
    from chute.client.images import ImageClient

    api = start_api()
    client = ImageClient(api.url)
    data = os.urandom(24 * MiB)
    image = client.create(name="big", disk_format="raw", container_format="bare")
    client.upload(image["id"], io.BytesIO(data), len(data))
    with pytest.raises(OSError) as info:
        download_image(client, Image.parse(client.get(image["id"])), str(small_fs / "big.raw"))
    assert info.value.errno == errno.ENOSPC
    assert os.listdir(small_fs) == []
