"""kill -9 of chute-api (master and workers at once) in the middle of uploads.

After each crash and restart the image must be `queued` with nothing recorded, or `active` with
data matching its hashes; the store holds no temporary file and no orphan (a whole-looking file
no image owns); and the upload can be retried.
"""

from __future__ import annotations

import os
import signal
import time

import pytest
import requests

from tests.helpers.digests import digests
from tests.helpers.disks import write_random_file
from tests.helpers.faults import MiB, rng, same_content, send_from_file, store_leftovers
from tests.helpers.images import create, open_upload, show, upload
from tests.helpers.polling import wait_for

SIZE = 256 * MiB
SPREAD_TRIALS = 18  # kill points stratified over the body: one in each 1/18th of it
AFTER_BODY_TRIALS = 2  # whole body sent, killed while the server hashes, fsyncs and commits
AFTER_COMMIT = -1.0  # the last trial: killed as soon as the server logged the commit
FULL_RETRY_EVERY = 11  # the retry re-sends the whole 256 MiB every 11th trial, 1 MiB otherwise


@pytest.fixture(scope="module")
def big_file(tmp_path_factory):
    path = write_random_file(tmp_path_factory.mktemp("upload") / "image.raw", SIZE,
                             "crash-upload")
    return path, digests(path)


def _kill_points(name: str) -> list[tuple[int, float]]:
    """(bytes sent, delay before the kill) for every trial, seeded."""
    gen = rng(name)
    points = [(int((i + gen.random()) * SIZE / SPREAD_TRIALS), 0.0)
              for i in range(SPREAD_TRIALS)]
    points += [(SIZE, gen.uniform(0.0, 1.0)) for _ in range(AFTER_BODY_TRIALS)]
    points.append((SIZE, AFTER_COMMIT))
    return points


def _check_after_restart(api, image_id: str, source, want: dict,
                         others: frozenset[str] = frozenset()) -> str:
    """The image is queued and clean, or active and whole; the store holds only the files
    of active images (`others` are earlier images that are active)."""
    image = show(api, image_id)
    assert image["status"] in ("queued", "active"), image
    if image["status"] == "active":
        assert (image["checksum"], image["os_hash_value"]) == (want["checksum"],
                                                               want["os_hash_value"])
        assert same_content(api.datadir / image_id, source), "the active image's file differs"
        leftovers = store_leftovers(api, {image_id, *others})
    else:
        for key in ("size", "checksum", "os_hash_value", "virtual_size"):
            assert image[key] is None, (key, image)
        assert image["locations"] == []
        leftovers = store_leftovers(api, set(others))
    assert leftovers == [], f"left in the store after the crash: {leftovers}"
    return image["status"]


def test_kill_9_at_random_points_of_a_256_mib_upload(start_api, big_file, tmp_path):
    path, want = big_file
    small = write_random_file(tmp_path / "retry.raw", MiB, "crash-upload-retry")
    small_want = digests(small)
    api = start_api(DEFAULT={"workers": 1})
    outcomes = {"queued": 0, "active": 0}
    retried = 0
    started = time.monotonic()
    for trial, (nbytes, delay) in enumerate(_kill_points("crash-upload")):
        image_id = create(api)["id"]
        sock = open_upload(api, image_id, SIZE)
        try:
            send_from_file(sock, path, nbytes)
            if delay == AFTER_COMMIT:
                committed = f"image {image_id}: saving -> active"
                wait_for(lambda c=committed: c in api.log_text(), 60, "the upload's commit")
            else:
                time.sleep(delay)
            api.kill()
        finally:
            sock.close()
        api.start()
        status = _check_after_restart(api, image_id, path, want)
        outcomes[status] += 1
        print(f"trial {trial}: killed after {nbytes} bytes (+{delay:.2f} s): {status}",
              flush=True)
        if status == "queued":
            # Any content may be retried; a small one keeps 24 trials fast, the whole image
            # now and then shows a full-size upload works after the crash too.
            source, source_want = ((path, want) if trial % FULL_RETRY_EVERY == 0
                                   else (small, small_want))
            resp = upload(api, image_id, source, timeout=120)
            assert resp.status_code == 204, (trial, nbytes, resp.text)
            assert _check_after_restart(api, image_id, source, source_want) == "active"
            retried += 1
        assert requests.delete(f"{api.url}/v2/images/{image_id}", timeout=10).status_code == 204
        assert store_leftovers(api, set()) == []
    trials = SPREAD_TRIALS + AFTER_BODY_TRIALS + 1
    assert outcomes["active"] >= 1, "the committed upload did not survive the crash"
    print(f"\nRELIABILITY crash-upload: {trials} kill -9 trials over a {SIZE // MiB} MiB upload, "
          f"{trials} survived ({outcomes['queued']} queued + {outcomes['active']} active, "
          f"0 corrupt, 0 left-over files), {retried} retried uploads succeeded, "
          f"{time.monotonic() - started:.1f} s")


def test_kill_9_between_link_and_commit_leaves_no_orphan(start_api, tmp_path):
    """The narrowest window: the file has its final name but the database still says
    `saving`. A restart must not leave that file behind as an orphan (it would also make the
    retried upload fail: the store never overwrites an existing image file)."""
    path = write_random_file(tmp_path / "small.raw", 8 * MiB, "orphan-window")
    want = digests(path)
    api = start_api(DEFAULT={"workers": 1})
    caught, active = 0, set()
    # Usually caught at once; fsync-free filesystems narrow the window. `attempt` is reported.
    for attempt in range(30):  # noqa: B007
        image_id = create(api)["id"]
        final = str(api.datadir / image_id)
        sock = open_upload(api, image_id, 8 * MiB)
        try:
            send_from_file(sock, path, 8 * MiB)
            deadline = time.monotonic() + 10
            while not os.path.exists(final) and time.monotonic() < deadline:
                pass  # spin: the window is a few milliseconds wide
            os.killpg(api.proc.pid, signal.SIGKILL)
            api.kill()
        finally:
            sock.close()
        api.start()
        status = _check_after_restart(api, image_id, path, want, frozenset(active))
        if status == "queued":
            caught += 1
            resp = upload(api, image_id, path, timeout=120)
            assert resp.status_code == 204, resp.text
            assert _check_after_restart(api, image_id, path, want, frozenset(active)) == "active"
        active.add(image_id)
        if caught >= 2:
            break
    print(f"\nRELIABILITY crash-upload: kill -9 just after the link, {attempt + 1} attempts, "
          f"{caught} caught the image uncommitted, none left an orphan")
    assert caught, "never killed the server between the link and the commit"


def test_a_file_left_beside_a_queued_image_is_removed_at_start(start_api, tmp_path):
    """A crash during a start's own recovery - after the image went back to `queued`, before
    its final-named file was removed - leaves that file behind with a queued image. The next
    start must remove it, or every retried upload of the image fails."""
    path = write_random_file(tmp_path / "small.raw", 2 * MiB, "queued-leftover")
    api = start_api(DEFAULT={"workers": 1})
    image_id = create(api)["id"]
    leftover = api.datadir / image_id
    leftover.write_bytes(b"half of an image that no upload finished")
    api.kill()
    api.start()
    assert not leftover.exists()
    resp = upload(api, image_id, path, timeout=120)
    assert resp.status_code == 204, resp.text
    assert show(api, image_id)["checksum"] == digests(path)["checksum"]
