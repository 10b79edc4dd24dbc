"""A slow client costs a connection, never a worker (issue 18, item 1): each service's HAProxy
front end holds the request until its head (and a JSON body) has arrived.

Before the front end, 16 trickling connections froze chute-api (2 workers x 8 threads) and 8
froze chute-compute, for as long as they stayed open.
"""

from __future__ import annotations

import socket
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from bench.slowloris import SlowClients, p99, timed_requests
from chute.front_end import BUFFER_BYTES
from tests.helpers.faults import MiB, timed_get
from tests.helpers.images import create, open_upload
from tests.helpers.polling import wait_for
from tests.helpers.services import prepare_api, prepare_compute

SLOW = 256  # slow connections on each service
SECONDS = 30
TIMEOUT = 2  # client_socket_timeout of the services that must drop connections


@pytest.fixture(scope="module")
def services(tmp_path_factory):
    """chute-api and chute-compute with their default workers, threads and timeouts."""
    api = prepare_api(tmp_path_factory.mktemp("slow-api"))
    compute = prepare_compute(tmp_path_factory.mktemp("slow-compute"), api)
    try:
        yield api.start(), compute.start()
    finally:
        compute.kill()
        api.kill()


def test_a_normal_client_stays_fast_beside_256_slow_connections_on_each_service(services):
    api, compute = services
    attackers = [SlowClients("127.0.0.1", api.port, "/v2/images", SLOW),
                 SlowClients("127.0.0.1", compute.port, "/v2.1/servers", SLOW)]
    for attacker in attackers:
        attacker.start()
    try:
        with ThreadPoolExecutor(2) as pool:
            api_times, compute_times = pool.map(
                lambda url: timed_requests(url, SECONDS),
                [f"{api.url}/v2/images", f"{compute.url}/v2.1/servers"])
    finally:
        for attacker in attackers:
            attacker.stop()
    # The default timeout (120 s) outlasts the test: the slow connections stayed open.
    assert [a.dropped for a in attackers] == [0, 0]
    assert len(api_times) > 100 and len(compute_times) > 100
    assert p99(api_times) < 1.0, sorted(api_times)[-10:]
    assert p99(compute_times) < 1.0, sorted(compute_times)[-10:]


def seconds_until_closed(sock: socket.socket, sent: bytes, limit: float = 15) -> float:
    """Send `sent`, then read (an answer, if any) until the server closes; the seconds that took."""
    sock.settimeout(limit)
    if sent:
        sock.sendall(sent)
    started = time.monotonic()
    while sock.recv(65536):
        pass
    return time.monotonic() - started


HEAD = "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"

CASES = {
    "idle": lambda path: b"",
    "half a head": lambda path: HEAD.format(method="GET", path=path).encode(),
    "a stalled JSON body": lambda path: (HEAD.format(method="POST", path=path)
                                         + "Content-Length: 100\r\n\r\n{\"name\": ").encode(),
    "an idle keep-alive": lambda path: (HEAD.format(method="GET", path=path)
                                        + "\r\n").encode(),
}


@pytest.fixture(scope="module")
def impatient(tmp_path_factory):
    """chute-api and chute-compute whose client_socket_timeout is TIMEOUT."""
    api = prepare_api(tmp_path_factory.mktemp("impatient-api"),
                      DEFAULT={"client_socket_timeout": TIMEOUT})
    compute = prepare_compute(tmp_path_factory.mktemp("impatient-compute"), api,
                              wsgi={"client_socket_timeout": TIMEOUT})
    try:
        yield api.start(), compute.start()
    finally:
        compute.kill()
        api.kill()


@pytest.mark.parametrize("case", list(CASES))
def test_idle_and_half_sent_requests_are_dropped_after_client_socket_timeout(impatient, case):
    api, compute = impatient
    targets = [(api.port, "/v2/images"), (compute.port, "/v2.1/servers")]
    with ThreadPoolExecutor(len(targets)) as pool:
        waited = list(pool.map(
            lambda target: seconds_until_closed(
                socket.create_connection(("127.0.0.1", target[0])), CASES[case](target[1])),
            targets))
    for seconds in waited:
        assert TIMEOUT - 0.5 < seconds < TIMEOUT + 2, waited


def test_stalled_uploads_hold_at_most_half_the_threads(start_api):
    # Before the front end, 4 stalled uploads held all 4 threads: every other request waited
    # for client_socket_timeout (120 s here).
    api = start_api(DEFAULT={"workers": 1, "threads": 4})
    images = [create(api)["id"] for _ in range(4)]
    stalled = [open_upload(api, image_id, 4 * MiB, b"a" * (BUFFER_BYTES * 2))
               for image_id in images]
    try:
        wait_for(lambda: saving(api, images) == 2, 10, "two uploads to reach the workers")
        status, seconds = timed_get(f"{api.url}/v2/images", timeout=5)
        assert status == 200 and seconds < 1.0, seconds
        time.sleep(1)
        assert saving(api, images) == 2  # the other two wait in the front end's queue
    finally:
        for sock in stalled:
            sock.close()


def saving(api, images: list[str]) -> int:
    log = api.log_text()
    return sum(f"image {image_id}: queued -> saving" in log for image_id in images)
