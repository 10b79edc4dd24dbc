"""Run a WSGI app under gunicorn, embedded, behind the service's own HAProxy front end
(chute.front_end), so both services share one production server.

gunicorn rather than uvicorn: on this machine gunicorn served 1 GiB files at 2-3 GB/s (it uses
sendfile(2) for wsgi.file_wrapper responses with a Content-Length) and took uploads at
1.3-3 GB/s, while uvicorn's FileResponse managed 0.6-0.75 GB/s burning ~1 s CPU per GiB.
gunicorn's gthread worker blocks a thread on each connection's request head, so the workers
listen only on a private unix socket and HAProxy owns the public port.
"""

from __future__ import annotations

import functools
import gc
import os
import shutil
import signal
import socket
import tempfile
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable

from gunicorn import util as gunicorn_util
from gunicorn.app.base import BaseApplication
from gunicorn.glogging import Logger as GunicornLogger

from chute.front_end import BINARY as front_end_binary
from chute.front_end import FrontEnd, FrontEndError, FrontEndSettings
from chute.log import EscapingFormatter

if TYPE_CHECKING:
    import ctypes

# A request body at least this large (or chunked) leaves freed buffers worth handing back.
_TRIM_AFTER_BODY = 1 << 20


def listen(host: str, port: int) -> socket.socket:
    """The service's public socket, bound and listening (OSError if the port is taken).

    Bound by the service itself and handed to HAProxy, so the port is taken once, by the
    process that reports the failure. With SO_REUSEADDR, so a socket in TIME_WAIT does not
    count as taken."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(socket.SOMAXCONN)
    except OSError:
        sock.close()
        raise
    return sock


def bind_error(host: str, port: int) -> OSError | None:
    """Why a service could not listen on `host:port` now, or None: `chute up` asks for both of
    its ports before it starts either service."""
    try:
        listen(host, port).close()
    except OSError as exc:
        return exc
    return None


class EscapingLogger(GunicornLogger):  # type: ignore[misc]
    """gunicorn's own error log, escaped as chute's is (chute.log.escape): what gunicorn
    writes of a request (its URI, a header it refused) cannot make a line that looks like
    chute's or gunicorn's own."""

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        for handler in self.error_log.handlers:
            handler.setFormatter(EscapingFormatter(self.error_fmt, self.datefmt))


class _Embedded(BaseApplication):  # type: ignore[misc]
    def __init__(self, app_factory: Callable[[], Any], options: dict[str, Any]) -> None:
        self._factory = app_factory
        self._options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self._options.items():
            if key in self.cfg.settings and value is not None:
                self.cfg.set(key, value)

    def load(self) -> Any:
        return self._factory()


@functools.cache
def _libc() -> ctypes.CDLL:
    import ctypes  # here, not at the top: the master never needs it

    return ctypes.CDLL(None)


def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's malloc_trim, or None where the C library has none (musl)."""
    return getattr(_libc(), "malloc_trim", None)


# glibc's mallopt parameter number (malloc.h); 2 arenas: the main thread's and one shared.
_M_ARENA_MAX = -8
_ARENAS = 2


def _cap_malloc_arenas(server: Any, worker: Any) -> None:
    """gunicorn post_fork hook: let a worker's threads share two glibc malloc arenas.

    By default glibc gives each new thread an arena of its own (up to 8 per core), and every
    arena keeps its free pages and fragments. A worker runs `threads` request threads plus the
    upload's hashing and writer threads; after 1,000 creates and 10 s of image-show/list load
    each of its 8 request-thread arenas held 0.35-0.55 MiB, 4.4 MiB in all, that
    malloc_trim(0) gave back only 1 MiB of. Python allocates under the GIL, so the threads
    hardly ever contend for an arena lock; SQLite and the hashes run without the GIL but
    allocate little. Measured with 2 workers after that load: 3.4-4 MiB less RSS in all
    (137.2 -> 133.8 MiB), image-show and image-list req/s the same within the noise (medians
    of 5 alternated wrk runs: 738 vs 733 and 380 vs 341). Runs before the worker starts any
    thread, since glibc assigns a thread its arena at its first malloc.
    """
    mallopt = getattr(_libc(), "mallopt", None)
    if mallopt is not None:
        mallopt(_M_ARENA_MAX, _ARENAS)


class _Tidy:
    """gunicorn pre/post_request hooks: free garbage as it is made, and hand freed memory back
    to the OS at the right moments.

    Requests leave reference cycles only the collector frees: SQLAlchemy's bind parameters
    memoize `_cloned_set = {itself}`, a cycle per parameter of every statement built per
    request (image-show and image-list now use statements built once, chute.images.db, but
    creates, updates and uploads still build theirs). Objects that outlived a collection or
    two during their request wait for a full one, and meanwhile spread over the allocator's
    arenas, which then cannot be given back. So: a collection every COLLECT_EVERY requests,
    and a full one with malloc_trim when the worker falls idle after TRIM_AFTER requests, or
    at once after a large upload (_large_body). Measured on chute-api before show and list
    stopped making cycles (2 workers, 1,000 creates, 5 s of image-show and image-list at 32
    connections, then two 1 GiB PUT + GET), summed peak RSS: 135.2-136.2 MiB before,
    133.8-135.2 with this; malloc_trim alone made no difference.

    The collection every COLLECT_EVERY requests is of the two young generations only, where a
    request's cycles are: a full one also traverses all the app imported and cached lazily
    after _freeze_startup_objects, and under a burst of server creates that was 10-13% of
    chute-compute-api's CPU (py-spy). Young generations only, the API's CPU in the
    scheduling bench's 24-create bursts fell 16% (3.05 -> 2.56 s summed over six A/B cases).
    """

    COLLECT_EVERY = 16
    TRIM_AFTER = 64

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._in_flight = 0
        self._served = 0  # requests finished since the last trim

    def before(self, worker: Any, req: Any) -> None:
        with self._lock:
            self._in_flight += 1

    def after(self, worker: Any, req: Any, environ: dict[str, Any], resp: Any) -> None:
        large = _large_body(environ)
        with self._lock:
            self._in_flight -= 1
            self._served += 1
            served = self._served
            trim = large or (self._in_flight == 0 and served >= self.TRIM_AFTER)
            if trim:
                self._served = 0
        if trim:
            _collect_and_trim()
        elif served % self.COLLECT_EVERY == 0:
            gc.collect(1)


def _freeze_startup_objects(worker: Any) -> None:
    """gunicorn post_worker_init hook: move everything the app's start-up made out of the
    collector's sight (gc.freeze), since it lives as long as the worker.

    Measured in a chute-api worker: 81,000 tracked objects, a full collection 21 ms; frozen,
    0.1 ms with the same garbage found. The collections Python runs by itself get as cheap,
    which a request waiting behind one holding the GIL sees in its latency.
    """
    gc.freeze()


def _large_body(environ: dict[str, Any]) -> bool:
    """A request body worth handing back at once: each upload, not only when idle.

    An upload passes its chunks through the request thread, the hashing threads and the
    writer thread; glibc keeps what they freed in per-thread arenas (its mmap threshold rises
    to the chunk size after the first one is freed, so later chunks come from the arenas).
    Measured with 256 MiB raw PUTs: without this each upload left its worker 7-11 MiB larger,
    upload after upload (64 -> 71 -> 82 -> 89 MiB); with it the worker stays at ~72 MiB after
    the first. malloc_trim(0) once per upload costs nothing measurable (server CPU per upload
    1.5-1.9 s either way); the chunks of one upload still reuse the same memory. Making glibc
    mmap every chunk instead (M_MMAP_THRESHOLD or M_TRIM_THRESHOLD) also kept RSS flat but
    cost +0.8 s CPU per 256 MiB upload in page faults (1.9 -> 2.8 s).

    The collection before the trim matters here too: each inspected upload leaves a reference
    cycle of oslo format inspectors (33 objects and the data they captured, ~0.1 MiB), which
    otherwise waits for the next full collection - 1 MiB per upload while they held a copy of
    the first MiB.
    """
    chunked = "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower()
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    return chunked or length >= _TRIM_AFTER_BODY


def _collect_and_trim() -> None:
    gc.collect()
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def _client_address(app: WSGIApp) -> WSGIApp:
    """REMOTE_ADDR as HAProxy saw it: the workers' own peer is HAProxy's end of the unix socket.
    HAProxy sets X-Forwarded-For, replacing whatever a client sent under that name."""

    def with_client_address(environ: dict[str, Any], start_response: Callable[..., Any]
                            ) -> Iterable[bytes]:
        forwarded = environ.get("HTTP_X_FORWARDED_FOR")
        if forwarded:
            environ["REMOTE_ADDR"] = forwarded
        return app(environ, start_response)

    return with_client_address


def _stop_service(front_end: FrontEnd) -> None:
    """HAProxy exited on its own: the service serves nobody any more, so it stops (gracefully:
    the requests in the workers finish)."""
    os.kill(os.getpid(), signal.SIGTERM)


def _start_front_end(front_end: FrontEnd, listener: socket.socket) -> None:
    """gunicorn when_ready hook (the workers' socket exists, no worker is forked yet): start
    HAProxy on the public socket, then let go of it, so that no worker holds the port (a
    worker outliving a killed service would keep the next start from binding it)."""
    front_end.start(_stop_service)
    listener.close()


RUNTIME_PREFIX = "chute-run-"  # + the service's pid + "-" + mkdtemp's random part


def _runtime_dir() -> Path:
    """A new 0700 directory for the workers' socket and HAProxy's config (only this user can
    reach the workers behind the front end). Those a killed service left are removed first:
    ours by owner, dead by the pid in their name."""
    base = Path(tempfile.gettempdir())
    for old in base.glob(f"{RUNTIME_PREFIX}*-*"):
        pid = old.name[len(RUNTIME_PREFIX):].split("-")[0]
        try:
            if pid.isdigit() and old.lstat().st_uid == os.getuid() and not _alive(int(pid)):
                shutil.rmtree(old, ignore_errors=True)
        except OSError:
            continue
    return Path(tempfile.mkdtemp(prefix=f"{RUNTIME_PREFIX}{os.getpid()}-"))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# How much of a refused request body a worker still reads (and drops) before it closes the
# connection, within gunicorn's 2 s linger. gunicorn drains 64 KiB; our peer is HAProxy on a
# unix socket, and closing a unix socket with unread data resets it (ECONNRESET), which can
# make HAProxy cut the early answer (a 413 once the size cap is passed) short of its body.
# Reading memory from HAProxy is cheap; what the client still sends past this is dropped.
REFUSED_BODY_DRAIN = 64 * 1024 * 1024


def _linger_on_refused_bodies() -> None:
    close_graceful = gunicorn_util.close_graceful
    if not isinstance(close_graceful, functools.partial):
        gunicorn_util.close_graceful = functools.partial(close_graceful,
                                                         max_drain=REFUSED_BODY_DRAIN)


def serve(app_factory: Callable[[], Any], listener: socket.socket, front: FrontEndSettings,
          workers: int, threads: int = 8, timeout: int = 120, **extra: Any) -> None:
    """Serve on `listener` (see listen) until SIGTERM/SIGINT. `app_factory` runs in each worker
    after fork. FrontEndError if HAProxy stopped before the service was asked to."""
    runtime = _runtime_dir()
    upstream = runtime / "workers.sock"
    front_end = FrontEnd(front, listener.fileno(), str(upstream), runtime / "haproxy.cfg")
    tidy = _Tidy()  # one per worker: the master's copy is forked with its counters at zero
    _linger_on_refused_bodies()
    options = {
        "bind": f"unix:{upstream}",
        "workers": workers,
        "worker_class": "gthread",
        "threads": threads,
        "timeout": timeout,
        "graceful_timeout": 10,
        "accesslog": None,
        "errorlog": "-",
        "loglevel": "warning",
        "logger_class": EscapingLogger,
        "preload_app": False,
        # The unix socket's peer is always HAProxy, which gunicorn trusts with forwarding and
        # scheme headers: none of them may pass from a client (an X-Forwarded-Proto: https
        # would turn every Location into https).
        "secure_scheme_headers": {},
        "forwarder_headers": "",
        "when_ready": lambda arbiter: _start_front_end(front_end, listener),
        "on_exit": lambda arbiter: front_end.stop(),
        "post_fork": _cap_malloc_arenas,
        "post_worker_init": _freeze_startup_objects,
        "pre_request": tidy.before,
        "post_request": tidy.after,
        # No "sendfile" key: gunicorn's Config.sendfile returns False whenever the setting is
        # set at all (it only exists as --no-sendfile), so "sendfile": True turned sendfile(2)
        # OFF and downloads went through 8 KiB read()+send() at ~0.4 GB/s.
        **extra,
    }
    master = os.getpid()
    try:
        _Embedded(lambda: _client_address(app_factory()), options).run()
    except SystemExit as exc:  # the arbiter's halt; a worker's exit unwinds through here too
        if os.getpid() != master or exc.code not in (0, None):
            raise
    finally:
        if os.getpid() == master:
            front_end.stop()
            shutil.rmtree(runtime, ignore_errors=True)
    if front_end.exited:
        status = "" if front_end.exit_status is None else f" (status {front_end.exit_status})"
        raise FrontEndError(f"the front end ({front_end_binary}) exited{status}; the service "
                            "stopped")
