"""Clients that hang up or stall mid-transfer must not leave an image in `saving` nor hold a
server thread for longer than `client_socket_timeout`.

The servers here have one worker process with two threads, so two stuck requests would be
enough to stop the service: "still serving" is a real check, not a formality.
"""

from __future__ import annotations

import socket
import time

import pytest
import requests

from chute.front_end import BUFFER_BYTES
from tests.helpers.disks import write_random_file
from tests.helpers.faults import (
    MiB,
    open_chunked_upload,
    open_download,
    rng,
    same_content,
    send_chunks,
    send_from_file,
    store_leftovers,
    timed_get,
)
from tests.helpers.images import create, open_upload, show, upload, upload_image
from tests.helpers.polling import wait_for

TIMEOUT = 2  # client_socket_timeout for these servers, seconds
PROMPT = 1.5  # a request to a free server answers well within this
# gunicorn closes a dropped connection from the worker's main loop, lingering up to 2 s for the
# peer to close (RFC 9112 9.6); a stalled peer never does, so each costs the loop 2 s.
LINGER = 2.0


@pytest.fixture
def api(start_api):
    return start_api(DEFAULT={"workers": 1, "threads": 2, "client_socket_timeout": TIMEOUT})


@pytest.fixture
def image_file(tmp_path):
    return write_random_file(tmp_path / "image.raw", 64 * MiB, "hangup")


def _queued_and_clean(api, image_id: str, active: set[str]) -> bool:
    image = show(api, image_id)
    return image["status"] == "queued" and not store_leftovers(api, active)


def _serves_promptly(api) -> float:
    status, seconds = timed_get(api.url + "/v2/images?limit=1", timeout=TIMEOUT + 10)
    assert status == 200
    assert seconds < PROMPT, f"the server took {seconds:.1f} s to answer a listing"
    return seconds


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_client_hanging_up_mid_upload_leaves_the_image_queued(api, image_file, framing):
    gen = rng(f"hangup-upload-{framing}")
    size = image_file.stat().st_size
    points = sorted(gen.randrange(0, size) for _ in range(4))
    for nbytes in points:
        image_id = create(api)["id"]
        if framing == "chunked":
            sock = open_chunked_upload(api, image_id)
            send_chunks(sock, image_file, nbytes)
        else:
            sock = open_upload(api, image_id, size)
            send_from_file(sock, image_file, nbytes)
        sock.close()
        if nbytes >= BUFFER_BYTES:  # the front end had passed the upload on to a worker
            wait_for(lambda i=image_id: f"image {i}: upload failed" in api.log_text(),
                     TIMEOUT + 5, f"the upload of {image_id} abandoned at {nbytes} bytes")
        wait_for(lambda i=image_id: _queued_and_clean(api, i, set()), TIMEOUT + 5,
                 f"image {image_id} back to queued after a hang-up at {nbytes} bytes")
        _serves_promptly(api)
        assert upload(api, image_id, image_file, timeout=120).status_code == 204
        assert requests.delete(f"{api.url}/v2/images/{image_id}", timeout=10).status_code == 204
    print(f"\nRELIABILITY hang-up: {len(points)} {framing} uploads abandoned mid-body, all back "
          "to queued with nothing stored, all retried successfully")


def test_client_hanging_up_mid_download_frees_the_thread(api, image_file):
    image = upload_image(api, image_file)
    for _ in range(6):  # three times the thread count
        sock = open_download(api, image["id"])
        assert sock.recv(65536)
        sock.close()
    _serves_promptly(api)
    resp = requests.get(f"{api.url}/v2/images/{image['id']}/file", timeout=30)
    assert resp.status_code == 200
    out = image_file.parent / "downloaded"
    out.write_bytes(resp.content)
    assert same_content(out, image_file)


def test_stalled_uploads_are_dropped_after_client_socket_timeout(api, image_file):
    size = image_file.stat().st_size
    stalled = []
    # As many as reach the workers at once: the front end lets uploads use half the threads.
    for n in range(1):
        image_id = create(api)["id"]
        sock = open_upload(api, image_id, size)
        send_from_file(sock, image_file, (n + 1) * MiB)
        stalled.append((image_id, sock))
    try:
        started = time.monotonic()
        for image_id, _ in stalled:
            wait_for(lambda i=image_id: f"image {i}: queued -> saving" in api.log_text(), 10,
                     f"upload of {image_id} started")
            wait_for(lambda i=image_id: f"image {i}: upload failed (TimeoutError)"
                     in api.log_text(), TIMEOUT + 8, f"stalled upload of {image_id} dropped")
        dropped_after = time.monotonic() - started
        # Dropping them must not stall the worker: given up within the timeout plus a margin.
        assert dropped_after < TIMEOUT + PROMPT, f"dropped only after {dropped_after:.1f} s"
        # The front end holds each stalled client's place in the workers' queue until the
        # client has been silent for the timeout once more (HAProxy ends a stream only once
        # its request has ended too): still bounded by the timeout, not by the client.
        for image_id, _ in stalled:
            wait_for(lambda i=image_id: _queued_and_clean(api, i, set()), TIMEOUT + 8,
                     f"image {image_id} back to queued")
        _serves_promptly(api)
        for _, sock in stalled:  # a stalled client that reads again learns why
            assert sock.recv(4096).startswith(b"HTTP/1.1 408 "), "no 408 for the stalled client"
    finally:
        for _, sock in stalled:
            sock.close()
    print(f"\nRELIABILITY stall: 2 stalled uploads dropped {dropped_after:.1f} s after they "
          f"stalled (client_socket_timeout {TIMEOUT} s); images back to queued")


def _stalled_download(api, image_id: str) -> socket.socket:
    """A GET whose client never reads: the server's sends block once the buffers fill."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(30)
    sock.connect(("127.0.0.1", api.port))
    sock.sendall(f"GET /v2/images/{image_id}/file HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
    return sock


def test_stalled_downloads_do_not_hold_the_threads(api, image_file):
    image = upload_image(api, image_file)
    stalled = [_stalled_download(api, image["id"]) for _ in range(2)]
    try:
        time.sleep(0.5)  # both threads are now blocked sending into full buffers
        started = time.monotonic()
        status, _ = timed_get(api.url + "/v2/images?limit=1", timeout=TIMEOUT + 20)
        assert status == 200
        waited = time.monotonic() - started
        assert waited < TIMEOUT + 2 * LINGER + 3, (
            f"a listing waited {waited:.1f} s behind two stalled downloads "
            f"(client_socket_timeout is {TIMEOUT} s)")
        time.sleep(2 * LINGER)
        _serves_promptly(api)
    finally:
        for sock in stalled:
            sock.close()
    print(f"\nRELIABILITY stall: 2 stalled downloads released their threads; the next request "
          f"was answered after {waited:.1f} s (client_socket_timeout {TIMEOUT} s)")
