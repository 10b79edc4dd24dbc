"""Races: 50 uploads to one queued image, 16 boots of one image on one host.

Uploads race on the queued -> saving compare-and-swap across two worker processes: exactly one
may win, and the stored bytes must be the winner's (each uploader sends different content).
Boots race on the image cache's per-image lock: one transfer, every server ACTIVE.
"""

from __future__ import annotations

import hashlib
import threading
from concurrent.futures import ThreadPoolExecutor

import requests

from tests.helpers.digests import base_name, sha512_file
from tests.helpers.disks import write_random_file
from tests.helpers.faults import MiB, rng
from tests.helpers.images import JSON, create, show, store_files, upload_image
from tests.helpers.servers import base_dir, boot, server, transfers_logged, wait_built

UPLOADERS = 50
BOOTS = 16


def test_50_parallel_uploads_to_one_image_one_wins(start_api):
    api = start_api(DEFAULT={"workers": 2, "threads": 8})
    image_id = create(api)["id"]
    gen = rng("concurrent-uploads")
    bodies = [gen.randbytes(2 * MiB) for _ in range(UPLOADERS)]
    barrier = threading.Barrier(UPLOADERS)

    def put(n: int) -> tuple[int, str]:
        barrier.wait()
        resp = requests.put(f"{api.url}/v2/images/{image_id}/file", data=bodies[n],
                            headers={"Content-Type": "application/octet-stream", **JSON},
                            timeout=60)
        return resp.status_code, resp.text

    with ThreadPoolExecutor(UPLOADERS) as pool:
        results = list(pool.map(put, range(UPLOADERS)))
    statuses = [status for status, _ in results]
    during = sum("from saving" in text for _, text in results)  # lost while the winner ran
    winners = [n for n, status in enumerate(statuses) if status == 204]
    assert len(winners) == 1, statuses
    assert sorted(set(statuses)) == [204, 409], statuses
    body = bodies[winners[0]]
    image = show(api, image_id)
    assert image["status"] == "active"
    assert image["checksum"] == hashlib.md5(body).hexdigest()
    assert image["os_hash_value"] == hashlib.sha512(body).hexdigest()
    assert (api.datadir / image_id).read_bytes() == body
    assert store_files(api) == [image_id]
    resp = requests.get(f"{api.url}/v2/images/{image_id}/file", timeout=30)
    assert resp.content == body
    print(f"\nRELIABILITY concurrency: {UPLOADERS} parallel uploads to one image -> "
          f"1 x 204, {statuses.count(409)} x 409 ({during} while the winner was saving), "
          f"stored data is the winner's (uploader {winners[0]})")


def test_16_concurrent_boots_of_one_image_transfer_once(start_api, start_compute, tmp_path):
    api = start_api(DEFAULT={"workers": 1})
    image = upload_image(api, write_random_file(tmp_path / "image.raw", 32 * MiB, "storm"))
    # HTTP only: the slower transfer keeps every other boot waiting on the lock.
    compute = start_compute(api, glance={"allowed_direct_url_schemes": ""})
    barrier = threading.Barrier(BOOTS)

    def start(n: int) -> str:
        barrier.wait()
        return boot(compute, image["id"], name=f"storm-{n}")["id"]

    with ThreadPoolExecutor(BOOTS) as pool:
        ids = list(pool.map(start, range(BOOTS)))
    done = [wait_built(compute, server_id, timeout=120) for server_id in ids]
    assert [d["status"] for d in done] == ["ACTIVE"] * BOOTS, [d.get("fault") for d in done]
    assert transfers_logged(compute) == 1, compute.log_text()[-3000:]
    methods = sorted(server(compute, i)["chute:image_transfer"]["method"] for i in ids)
    assert methods == ["cache"] * (BOOTS - 1) + ["http"], methods
    assert sha512_file(base_dir(compute) / base_name(image["id"])) == image["os_hash_value"]
    waited = compute.log_text().count("another fetch is in progress")
    print(f"\nRELIABILITY concurrency: {BOOTS} concurrent boots of one image -> 1 transfer, "
          f"{BOOTS} ACTIVE, {waited} boots logged waiting on the image lock")
