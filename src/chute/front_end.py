"""The HAProxy front end each service starts and owns: a slow client costs a connection here,
never a worker thread (docs/architecture.md#processes).

gunicorn's gthread worker hands a new connection to a request thread, which then blocks reading
the request head: 16 connections trickling a header one byte at a time froze chute-api (2
workers x 8 threads), 8 froze chute-compute. HAProxy parses requests in an event loop and
forwards one to the workers only once its head (and, `http-buffer-request`, its first buffer of
body: all of a JSON document) has arrived, within `client_socket_timeout`; a connection that
idles longer is dropped. At most `worker_threads` requests are in the workers at once (the
server's `maxconn`); the rest wait in HAProxy's queue, not in a thread.

The service binds the public socket itself and hands the descriptor to HAProxy (`bind fd@N`):
the port is taken once, by the process that reports a failure naming `bind_port`, with no
window for another process between a check and the bind. HAProxy talks to gunicorn over a unix
socket in a 0700 directory only the service's user can enter. Loopback TCP instead would open
the workers to every local user, and costs more: 1 GiB GETs (kernel 6.18, HAProxy 2.6, 2 shared
cores), CPU-s per GiB HAProxy / worker: unix socket 0.20-0.31 / 0.07-0.08, TCP 0.49-0.53 /
0.06-0.14, TCP with `option splice-response` 0.26-0.29 / 0.22-0.27: the TCP stack on both hops
costs more than the copies splicing spares.

Download bodies are not spliced. Over the unix socket it does apply, with no copy at all
(gunicorn's sendfile puts page-cache pages in the socket by reference, MSG_SPLICE_PAGES, and
perf shows HAProxy's `_copy_to_iter`/`_copy_from_iter` gone, its context switches halved), but
a local reader then makes its one copy from pages nobody has read yet, as nginx's reader does,
instead of from what HAProxy just copied. The bench's reader, 1 GiB, alternated pairs, medians
(2026-12-07): warm, two sets of 21: server + reader CPU -0.14 then +0.02 CPU-s per GiB, MiB/s
1.10x then 1.01x; cold, 21 and 15 pairs: 0.98x then 0.73x (3 of 15 faster); and once the
workers' socket holds a MiB (chute.images.api_data.DOWNLOAD_SEND_BUFFER), 0.66x warm (1 of 13
faster). Upload bodies go the other way, and splicing them does pay (PIPE_BYTES).

HAProxy is the service's child, in its own process group (a terminal's Ctrl-C reaches the
service, which then stops it), and gets SIGTERM from the kernel if the service dies without
stopping it (PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import ctypes
import logging
import os
import select
import shutil
import signal
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from chute.errors import ChuteError

LOG = logging.getLogger("chute.front_end")

BINARY = "haproxy"
# How long a request may wait in HAProxy's queue for a free worker thread (503 after). Long
# uploads hold their thread for as long as their bytes flow; a queued request waits for one.
QUEUE_TIMEOUT = 120
# How long the workers may stay silent while HAProxy waits for a response (a finishing upload
# fsyncs and inspects its image before it answers). Write activity refreshes it during uploads.
SERVER_TIMEOUT = 600
# How long HAProxy takes for the unix socket to accept (a worker being respawned).
CONNECT_TIMEOUT = 5
# One HAProxy buffer: a request head must fit in it (Glance's max_header_line is 16 KiB, and
# HAProxy keeps 1 KiB of it for rewrites); `http-buffer-request` waits for this much body.
# 64 KiB rather than the default 16: 512 MiB downloads 2102 vs 1687 MiB/s, 0.16 vs 0.20 CPU-s.
# Nor larger or smaller: 1 GiB GETs, 13 alternated pairs against 64 KiB (the workers' socket
# holding a MiB), MiB/s 32 KiB 0.83x, 96 KiB 0.58x, 128 KiB 0.52x, 256 KiB 0.60x.
BUFFER_BYTES = 65536
# Upload bodies are spliced (`option splice-request` on the uploads backend): the kernel moves
# the client's TCP pages into a pipe and from it into the unix socket, where HAProxy otherwise
# recv()s each 64 KiB into its buffer and send()s it on, two copies and two syscalls per buffer.
# A pipe of PIPE_BYTES rather than the default 64 KiB moves a MiB per splice() (7.3k calls per
# GiB instead of 33k). HAProxy's CPU per GiB of raw PUT, 3 runs each, 2 shared cores:
# recv/send 0.46-0.51 s, splice with 64 KiB pipes 0.39-0.40 s, with 1 MiB pipes 0.21-0.23 s.
# The pipe holds references to pages, not a copy, and exists only while a body is in flight.
PIPE_BYTES = 1 << 20
# The send buffer of HAProxy's sockets to the workers, which bounds how much of a spliced upload
# body waits in the unix socket for the worker (a unix socket's sender's buffer is the limit,
# 208 KiB by default): with a MiB the receiving thread wakes about once per MiB instead of
# every ~250 KiB. Per 1 GiB raw PUT, 2 MiB chunks, alternated (2026-12-07, 2 shared cores),
# medians: server + HAProxy 3.78 -> 3.52 CPU-s (6 runs each), 3.54 -> 3.18 (4 each); the
# receiving thread 0.34-0.45 -> 0.26-0.32 with 1.1-1.4k voluntary context switches instead
# of 3.9-4.2k, HAProxy 0.23-0.33 -> 0.18-0.20. curl, the client, then spent 0.10-0.15 CPU-s
# more (0.28-0.40 -> 0.41-0.54), so the machine saves 0.1-0.25 CPU-s per GiB. Requests to
# the workers are all it sends them, so other requests do not notice.
SERVER_SNDBUF = 1 << 20
# One event-loop thread: HAProxy's default (one per core) contends with the workers for the
# cores. image-show under wrk (32 connections, medians of 4 alternated runs): 1 thread 2896
# req/s, 2 threads 1750, gunicorn without a front end 2476.
THREADS = 1
# The seconds HAProxy gets to exit after SIGTERM before it is killed.
STOP_WAIT = 5

_PR_SET_PDEATHSIG = 1


class FrontEndError(ChuteError):
    """HAProxy is missing or could not be started."""


@dataclass(frozen=True)
class FrontEndSettings:
    """What the front end needs from a service's settings."""

    client_socket_timeout: int  # seconds: request head, idle keep-alive, silent client
    worker_threads: int  # requests the workers serve at once (all workers' threads)
    # PUTs on paths matching this regex stream their body to a worker as it arrives
    # (uploads): at most half the threads serve them, so stalled uploads cannot take every
    # thread from the other requests. "" = none.
    upload_paths: str = ""

    @property
    def upload_threads(self) -> int:
        return max(1, self.worker_threads // 2)


def find_binary() -> str:
    """HAProxy's path, or FrontEndError saying how to get it."""
    path = shutil.which(BINARY)
    if path is None:
        raise FrontEndError(f"{BINARY} not found on PATH: it is the front end that keeps slow "
                            "clients off the workers (Debian: apt-get install haproxy)")
    return path


def render(settings: FrontEndSettings, listen_fd: int, upstream: str) -> str:
    """HAProxy's configuration, generated from the service's settings (the one place)."""
    idle = f"{settings.client_socket_timeout}s"
    return "\n".join([
        "global",
        f"    nbthread {THREADS}",
        f"    tune.bufsize {BUFFER_BYTES}",
        f"    tune.pipesize {PIPE_BYTES}",
        f"    tune.sndbuf.server {SERVER_SNDBUF}",
        "",
        "defaults",
        "    mode http",
        "    option http-buffer-request",
        f"    timeout http-request {idle}",
        f"    timeout http-keep-alive {idle}",
        f"    timeout client {idle}",
        f"    timeout connect {CONNECT_TIMEOUT}s",
        f"    timeout queue {QUEUE_TIMEOUT}s",
        f"    timeout server {SERVER_TIMEOUT}s",
        *_errors(),
        "",
        "frontend public",
        f"    bind fd@{listen_fd}",
        # Set, not appended (option forwardfor appends): the header the workers read holds the
        # address HAProxy saw and nothing a client wrote.
        "    http-request set-header X-Forwarded-For %[src]",
        *_upload_rules(settings),
        "    default_backend workers",
        "",
        "backend workers",
        f"    server wsgi unix@{upstream} maxconn {settings.worker_threads}",
        "",
        *_upload_backend(settings, upstream),
    ])


def _upload_rules(settings: FrontEndSettings) -> list[str]:
    if not settings.upload_paths:
        return []
    return ["    acl put method PUT",
            f"    acl upload_path path_reg {settings.upload_paths}",
            "    use_backend uploads if put upload_path"]


def _upload_backend(settings: FrontEndSettings, upstream: str) -> list[str]:
    """The same workers, through a narrower door: the threads left over stay free for the
    other requests (they wait in the workers' own queue when an upload holds theirs). Their
    bodies are spliced (see PIPE_BYTES)."""
    if not settings.upload_paths:
        return []
    return ["backend uploads",
            "    option splice-request",
            f"    server wsgi unix@{upstream} maxconn {settings.upload_threads}",
            ""]


def _errors() -> list[str]:
    """The answers HAProxy gives itself once a request is complete, with a body naming the
    problem. A malformed request (400) or one not complete in time (408) is answered by
    HAProxy 2.6's HTTP/1 parser with its built-in page ("Your browser sent an invalid
    request", "... didn't send a complete request in time"), which neither `errorfile` nor
    `http-error` replaces there (tried)."""
    messages = {
        503: f"No server thread became free within {QUEUE_TIMEOUT} s; try again later.",
        504: f"The server did not answer within {SERVER_TIMEOUT} s.",
    }
    return [f'    http-error status {status} content-type "text/plain; charset=UTF-8" '
            f'string "{status} {message}"' for status, message in messages.items()]


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM when the service dies, whatever kills it."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


class FrontEnd:
    """One running HAProxy: started once the workers' socket exists, stopped with the service.

    If HAProxy exits on its own, `on_exit` runs (the service stops: without its front end it
    serves nobody)."""

    def __init__(self, settings: FrontEndSettings, listen_fd: int, upstream: str,
                 config_path: Path) -> None:
        self._settings = settings
        self._fd = listen_fd
        self._upstream = upstream
        self._config_path = config_path
        self._proc: subprocess.Popen[bytes] | None = None
        self._stopping = False
        self.exited = False  # on its own, before stop()
        self.exit_status: int | None = None  # when known (negative: killed by that signal)

    def start(self, on_exit: Callable[[FrontEnd], None]) -> None:
        self._config_path.write_text(render(self._settings, self._fd, self._upstream))
        self._proc = subprocess.Popen(
            [find_binary(), "-db", "-f", str(self._config_path)],
            stdin=subprocess.DEVNULL, pass_fds=(self._fd,), process_group=0,
            preexec_fn=_die_with_parent)
        pidfd = os.pidfd_open(self._proc.pid)
        threading.Thread(target=self._watch, args=(pidfd, on_exit), name="front-end-watch",
                         daemon=True).start()

    def _watch(self, pidfd: int, on_exit: Callable[[FrontEnd], None]) -> None:
        """Wait for HAProxy to exit (a pidfd: gunicorn's master may reap it first, and then
        its status is lost)."""
        select.select([pidfd], [], [])
        os.close(pidfd)
        if self._stopping:
            return
        assert self._proc is not None
        try:
            status = self._proc.wait(timeout=1)
        except subprocess.TimeoutExpired:
            status = None
        self.exit_status = status if status else None
        self.exited = True
        on_exit(self)

    def stop(self) -> None:
        self._stopping = True
        if self._proc is None or self._proc.poll() is not None:
            return
        self._proc.terminate()
        try:
            self._proc.wait(timeout=STOP_WAIT)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
