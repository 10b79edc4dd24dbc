"""kill -9 of chute-compute at seeded points of image fetches, direct and over HTTP.

After each crash a full-size `.part` of garbage is planted where the fetch was writing (the
worst thing a crash can leave: a work file that looks whole). The restarted agent resumes the
build; every server must end ACTIVE on a base whose SHA-512 is the image's, or ERROR with a
fault - never BUILD - and no work file may remain.
"""

from __future__ import annotations

import os
import time

import pytest
import requests

from tests.helpers.digests import base_name, sha512_file
from tests.helpers.disks import write_random_file
from tests.helpers.faults import MiB, rng
from tests.helpers.images import upload_image
from tests.helpers.servers import base_dir, boot, wait_built

SIZE = 64 * MiB
TRIALS = 4  # per path


@pytest.fixture(scope="module")
def image_file(tmp_path_factory):
    return write_random_file(tmp_path_factory.mktemp("fetch") / "image.raw", SIZE,
                             "crash-fetch")


def _kill_at(compute, part, fraction: float, timeout: float = 30) -> int:
    """Kill the agent once `part` holds `fraction` of the image (or the fetch ended);
    -> bytes the part held at the kill (0: not caught in flight)."""
    deadline = time.monotonic() + timeout
    held = 0
    while time.monotonic() < deadline:
        try:
            held = os.stat(part).st_size
        except FileNotFoundError:
            held = 0
        if held >= fraction * SIZE or (held == 0 and (part.parent / part.stem).exists()):
            break
        time.sleep(0.001)
    compute.kill()
    return held if part.exists() else 0


def _plant_whole_looking_part(part) -> None:
    with open(part, "r+b" if part.exists() else "wb") as out:
        out.truncate(SIZE)
        out.seek(0)
        out.write(b"\xde\xad" * (MiB // 2))


def _crash_trials(api, compute, image_file, name: str) -> dict:
    gen = rng(name)
    counts = {"trials": 0, "in_flight": 0, "active": 0, "error": 0}
    servers = []
    for trial in range(TRIALS):
        image = upload_image(api, image_file)
        base = base_dir(compute) / base_name(image["id"])
        part = base.parent / (base.name + ".part")
        server = boot(compute, image["id"], name=f"{name}-{trial}")
        servers.append((server["id"], image))
        fraction = (trial + gen.random()) / TRIALS  # one point in each quarter of the transfer
        held = _kill_at(compute, part, fraction)
        counts["in_flight"] += held > 0
        _plant_whole_looking_part(part)
        compute.start()
        done = wait_built(compute, server["id"])
        assert done["status"] in ("ACTIVE", "ERROR"), done
        if done["status"] == "ERROR":
            assert done.get("fault", {}).get("message"), done
            counts["error"] += 1
        else:
            assert sha512_file(base) == image["os_hash_value"], "a base that is not the image"
            counts["active"] += 1
        assert not part.exists(), "a work file outlived the fetch"
        counts["trials"] += 1
    for server_id, _image in servers:  # nothing regressed in later trials either
        doc = requests.get(f"{compute.url}/v2.1/servers/{server_id}", timeout=10).json()
        assert doc["server"]["status"] in ("ACTIVE", "ERROR"), doc
    leftovers = [n for n in os.listdir(base_dir(compute)) if n.endswith((".part", ".tmp"))]
    assert leftovers == []
    return counts


def _report(path: str, counts: dict) -> None:
    print(f"\nRELIABILITY crash-fetch ({path}): {counts['trials']} kill -9 trials over a "
          f"{SIZE // MiB} MiB fetch, {counts['in_flight']} caught mid-transfer; after restart "
          f"{counts['active']} ACTIVE on a verified base, {counts['error']} ERROR with a "
          f"fault, 0 in BUILD; a whole-looking garbage .part planted each time, never used")


def test_kill_9_during_direct_fetch(start_api, start_compute, image_file):
    api = start_api(DEFAULT={"workers": 1})
    compute = start_compute(api, libvirt={"images_type": "qcow2"})
    counts = _crash_trials(api, compute, image_file, "crash-fetch-direct")
    assert "using file" in compute.log_text()
    _report("direct", counts)


def test_kill_9_during_http_fetch(start_api, start_compute, image_file):
    api = start_api(DEFAULT={"workers": 1})
    compute = start_compute(api, glance={"allowed_direct_url_schemes": ""})
    counts = _crash_trials(api, compute, image_file, "crash-fetch-http")
    assert "Successfully transferred using http" in compute.log_text()
    assert "using file" not in compute.log_text()
    _report("http", counts)
