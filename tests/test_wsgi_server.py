"""A chute-api worker gives back what a large upload used, seen from outside in
/proc/PID/status of a real worker (chute.images.upload's ring, chute.wsgi_server's hook)."""

from __future__ import annotations

import gc
import os
import re
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

from chute import wsgi_server
from tests.helpers.images import upload_image
from tests.helpers.polling import wait_for
from tests.helpers.procs import children
from tests.helpers.services import free_port

MiB = 1 << 20


def rss_mib(pid: int) -> float:
    time.sleep(0.5)  # the hook runs after the response has been sent
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS for {pid}")


def test_uploads_leave_the_worker_no_larger(start_api):
    # Measured before the upload ring moved out of malloc (chute.images.upload._Slot): the
    # worker grew 4 MiB at a time as uploads landed on new request threads, +16 MiB after 6
    # uploads; now +0.1 MiB.
    server = start_api(DEFAULT={"workers": 1})
    (worker,) = children(server.proc.pid)
    data = os.urandom(16 * MiB)
    for _ in range(2):  # the first uploads map the hashing libraries and fill the DB caches
        upload_image(server, data)
    settled = rss_mib(worker)
    for _ in range(6):
        upload_image(server, data)
    assert rss_mib(worker) - settled < 6


def malloc_arenas(pid: int) -> int:
    """glibc's thread arenas in a process: anonymous heaps reserved 64 MiB at a time, aligned."""
    heap = 64 * MiB
    starts = set()
    with open(f"/proc/{pid}/maps") as handle:
        for line in handle:
            fields = line.split()
            start, end = (int(x, 16) for x in fields[0].split("-"))
            if len(fields) == 5 and start % heap == 0 and end - start <= heap:
                starts.add(start)
    return len(starts)


def test_request_threads_share_two_malloc_arenas(start_api):
    # Measured with glibc's default (one arena per thread, up to 8 per core): after this load
    # the worker held 8 thread arenas; capped, the request threads share one beside main's.
    server = start_api(DEFAULT={"workers": 1})
    (worker,) = children(server.proc.pid)

    def busy(_: int) -> None:
        with requests.Session() as session:
            for _ in range(20):
                assert session.get(f"{server.url}/v2/images").status_code == 200
            upload_image(server, os.urandom(MiB))

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(busy, range(16)))
    assert malloc_arenas(worker) <= 1


class Collections:
    """Counts the collections the hooks run while it is installed, by generation; Python's
    own automatic ones are paused meanwhile, so every one counted was asked for."""

    def __init__(self) -> None:
        self.full = 0
        self.young = 0  # of generations 0 and 1 together

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "stop" and info["generation"] == 2:
            self.full += 1
        elif phase == "stop" and info["generation"] == 1:
            self.young += 1

    def __enter__(self) -> "Collections":
        self._was_enabled = gc.isenabled()
        gc.disable()
        gc.callbacks.append(self)
        return self

    def __exit__(self, *exc: object) -> None:
        gc.callbacks.remove(self)
        if self._was_enabled:
            gc.enable()


def serve_requests(tidy: wsgi_server._Tidy, count: int, environ: dict[str, str],
                   overlapping: bool = False) -> None:
    """`count` requests through the hooks; overlapping: one more stays in flight throughout."""
    if overlapping:
        tidy.before(None, None)
    for _ in range(count):
        tidy.before(None, None)
        tidy.after(None, None, environ, None)


def test_a_busy_worker_collects_the_young_generations_every_16_requests():
    # SQLAlchemy leaves a reference cycle per bind parameter of every statement it builds;
    # left to Python's own schedule they wait for a full collection. A full one every 16
    # requests would also traverse all a busy worker loaded lazily: only the young ones.
    tidy = wsgi_server._Tidy()
    with Collections() as seen:
        serve_requests(tidy, 15, {}, overlapping=True)
        assert (seen.young, seen.full) == (0, 0)
        serve_requests(tidy, 1, {}, overlapping=True)
        assert (seen.young, seen.full) == (1, 0)
        serve_requests(tidy, 48, {}, overlapping=True)
        assert (seen.young, seen.full) == (4, 0)


def test_a_worker_falling_idle_collects_in_full():
    tidy = wsgi_server._Tidy()
    with Collections() as seen:
        serve_requests(tidy, 64, {})
        assert seen.full == 1


def test_a_large_upload_is_tidied_at_once():
    tidy = wsgi_server._Tidy()
    with Collections() as seen:
        serve_requests(tidy, 1, {"CONTENT_LENGTH": str(MiB)}, overlapping=True)
        assert seen.full == 1
        serve_requests(tidy, 1, {"HTTP_TRANSFER_ENCODING": "chunked"}, overlapping=True)
        assert seen.full == 2
        serve_requests(tidy, 1, {"CONTENT_LENGTH": "100"}, overlapping=True)
        assert seen.full == 2


def test_start_up_objects_are_frozen_so_a_full_collection_is_cheap():
    before = gc.get_freeze_count()
    try:
        wsgi_server._freeze_startup_objects(None)
        assert gc.get_freeze_count() > before
        assert len(gc.get_objects(generation=2)) < gc.get_freeze_count()
    finally:
        gc.unfreeze()


def test_gunicorns_error_log_escapes_what_a_client_sent(tmp_path):
    from gunicorn.config import Config

    cfg = Config()
    cfg.set("errorlog", str(tmp_path / "error.log"))
    cfg.set("logger_class", wsgi_server.EscapingLogger)
    logger = cfg.logger_class(cfg)
    forged = "/x\n2026-12-07 02:00:00 [1] [ERROR] chute-api is compromised\x1b[2J"
    logger.error("Error handling request %s", forged)
    text = (tmp_path / "error.log").read_text()
    assert text.count("\n") == 1, text
    assert "/x\\n2026-12-07 02:00:00 [1] [ERROR] chute-api is compromised\\x1b[2J" in text


# -- the front end (chute.front_end), seen from outside ------------------------------------

ECHO_SERVER = """
import json, sys
from chute.front_end import FrontEndSettings
from chute.wsgi_server import listen, serve

def app(environ, start_response):
    seen = {key: environ.get(key) for key in ("REMOTE_ADDR", "HTTP_HOST", "wsgi.url_scheme")}
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps(seen).encode()]

serve(lambda: app, listen("127.0.0.1", int(sys.argv[1])), FrontEndSettings(5, 2), 1, threads=2)
"""


def test_the_app_sees_the_client_address_and_no_forwarding_header_from_a_client(tmp_path):
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-c", ECHO_SERVER, str(port)],
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        url = f"http://127.0.0.1:{port}/"
        wait_for(lambda: _answers(url), 20, "the echo server to answer")
        seen = requests.get(url, timeout=5, headers={
            "Host": "images.example:9292", "X-Forwarded-For": "6.6.6.6",
            "X-Forwarded-Proto": "https", "X-Forwarded-Ssl": "on"}).json()
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(15)
    assert seen == {"REMOTE_ADDR": "127.0.0.1", "HTTP_HOST": "images.example:9292",
                    "wsgi.url_scheme": "http"}


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=1).ok
    except requests.RequestException:
        return False


def front_end_of(server) -> int:
    kids = [int(pid) for task in os.listdir(f"/proc/{server.proc.pid}/task")
            for pid in open(f"/proc/{server.proc.pid}/task/{task}/children").read().split()]
    (front,) = [pid for pid in kids if Path(f"/proc/{pid}/comm").read_text().strip() == "haproxy"]
    return front


def test_the_front_end_dies_with_a_killed_service_and_frees_the_port(start_api):
    server = start_api()
    front = front_end_of(server)
    server.kill()  # SIGKILL, to the service's process group only: HAProxy has its own
    wait_for(lambda: not Path(f"/proc/{front}").exists() or
             "Z" in Path(f"/proc/{front}/stat").read_text().split(")")[1][:3], 10,
             "HAProxy to exit after its service")
    wait_for(lambda: wsgi_server.bind_error("127.0.0.1", server.port) is None, 10,
             "the port to be free")


def test_a_service_whose_front_end_dies_stops_with_one_line(start_api):
    server = start_api()
    os.kill(front_end_of(server), signal.SIGKILL)
    assert server.proc.wait(30) == 1
    lines = [line for line in server.log_text().splitlines() if line.startswith("chute-api:")]
    # The status is known unless gunicorn's master reaped HAProxy first (it reaps any child).
    assert len(lines) == 1 and re.fullmatch(
        r"chute-api: the front end \(haproxy\) exited( \(status -9\))?; the service stopped",
        lines[0]), lines


def test_without_haproxy_the_service_refuses_to_start(tmp_path):
    conf = tmp_path / "chute-api.conf"
    conf.write_text(f"[glance_store]\nfilesystem_store_datadir = {tmp_path}/images\n")
    conf.chmod(0o600)
    result = subprocess.run([str(Path(sys.executable).parent / "chute-api"), "--config-file",
                             str(conf)], capture_output=True, text=True, timeout=60,
                            env={**os.environ, "PATH": str(tmp_path)})
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "chute-api: haproxy not found on PATH: it is the front end that keeps slow clients off "
        "the workers (Debian: apt-get install haproxy)"]
