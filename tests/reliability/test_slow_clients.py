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
