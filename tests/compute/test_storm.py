"""A boot storm: 8 concurrent boots of one image on one host -> one transfer, all ACTIVE."""

import time
from concurrent.futures import ThreadPoolExecutor

from tests.helpers.digests import base_name, sha512_file
from tests.helpers.disks import make_qcow2
from tests.helpers.images import upload_image
from tests.helpers.servers import boot, wait_built


def test_eight_concurrent_boots_transfer_once(shared_api, start_compute, tmp_path):
    api = shared_api
    compute = start_compute(api)
    alone = upload_image(api, make_qcow2(tmp_path / "a.qcow2", "128M", data_mb=32), name="alone",
                         disk_format="qcow2")
    storm = upload_image(api, make_qcow2(tmp_path / "b.qcow2", "128M", data_mb=32), name="storm",
                         disk_format="qcow2")

    started = time.monotonic()
    first = wait_built(compute, boot(compute, alone["id"])["id"])
    one_boot = time.monotonic() - started
    assert first["status"] == "ACTIVE", first.get("fault")

    started = time.monotonic()
    with ThreadPoolExecutor(8) as pool:
        posted = list(pool.map(lambda n: boot(compute, storm["id"], name=f"vm{n}"), range(8)))
        servers = list(pool.map(lambda s: wait_built(compute, s["id"]), posted))
    storm_time = time.monotonic() - started
    print(f"\none boot: {one_boot:.3f} s; 8 concurrent boots of one image: {storm_time:.3f} s")

    assert [s["status"] for s in servers] == ["ACTIVE"] * 8, [s.get("fault") for s in servers]
    methods = sorted(s["chute:image_transfer"]["method"] for s in servers)
    assert methods == ["cache"] * 7 + ["file"]
    log = compute.log_text()
    assert log.count("Successfully transferred using") == 2  # `alone` once, `storm` once
    assert log.count(f"Copied {api.root / 'store' / 'images' / storm['id']} using file") == 1
    base = compute.instances_path / "_base" / base_name(storm["id"])
    assert sha512_file(base) == storm["os_hash_value"]
    for server in servers:
        assert (compute.instances_path / server["id"] / "disk").is_file()
