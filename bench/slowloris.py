"""Slow clients as an attacker runs them (slowloris and friends), and a normal client timed
beside them: the `slow_clients` scenario and tests/reliability/test_slow_clients.py use both.

`SlowClients` keeps `count` connections open to one service, in three shapes spread evenly: a
request line and headers trickled one byte at a time, half a head and then silence, a JSON
body that stops after its first bytes. A connection the server drops is opened again at once,
so the load holds however short the server's timeout is.
"""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

import requests

TRICKLE = "trickle"
HALF_HEAD = "half-head"
STALLED_BODY = "stalled-body"
SHAPES = (TRICKLE, HALF_HEAD, STALLED_BODY)


def opening(shape: str, host: str, path: str) -> tuple[bytes, bytes]:
    """The bytes a `shape` connection sends at once, and those it trickles afterwards."""
    head = f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
    if shape == TRICKLE:
        return b"", (head + "X-Padding: " + "a" * 4000 + "\r\n\r\n").encode()
    if shape == HALF_HEAD:
        return head.encode(), b""
    body = b'{"name": "slow"}'
    return (head + f"Content-Length: {len(body) * 64}\r\n\r\n").encode() + body, b""


@dataclass
class _Conn:
    sock: socket.socket
    pending: bytes


@dataclass
class SlowClients:
    """`count` slow connections to host:port on `path`, kept open until stop()."""

    host: str
    port: int
    path: str
    count: int
    interval: float = 0.5  # seconds between two bytes of one trickling connection
    opened: int = 0
    dropped: int = 0
    _conns: list[_Conn] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def _open(self, index: int) -> _Conn:
        shape = SHAPES[index % len(SHAPES)]
        sent, pending = opening(shape, self.host, self.path)
        sock = socket.create_connection((self.host, self.port), timeout=5)
        sock.setblocking(False)
        if sent:
            sock.send(sent)
        self.opened += 1
        return _Conn(sock, pending)

    def _tick(self, index: int) -> None:
        """Send the next trickled byte; reopen the connection if the server dropped it."""
        conn = self._conns[index]
        try:
            if conn.pending:
                conn.sock.send(conn.pending[:1])
                conn.pending = conn.pending[1:]
            alive = _still_open(conn.sock)
        except OSError:
            alive = False
        if not alive:
            conn.sock.close()
            self.dropped += 1
            self._conns[index] = self._open(index)

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            for index in range(self.count):
                if self._stop.is_set():
                    return
                try:
                    self._tick(index)
                except OSError:
                    pass  # a refused reopen: tried again next round
            self._stop.wait(max(0.0, self.interval - (time.monotonic() - started)))

    def start(self) -> SlowClients:
        self._conns = [self._open(index) for index in range(self.count)]
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
        for conn in self._conns:
            conn.sock.close()


def _still_open(sock: socket.socket) -> bool:
    """False once the server has answered (a 408) or closed: the attacker's cue to reopen."""
    try:
        sock.recv(4096, socket.MSG_PEEK)  # an answer, or b"" at the end of the stream
    except BlockingIOError:
        return True
    return False


def timed_requests(url: str, seconds: float, timeout: float = 5.0,
                   check: Callable[[requests.Response], bool] = lambda r: r.ok) -> list[float]:
    """A normal client's latencies over `seconds` of sequential GETs (a failure or a timeout
    counts as `timeout` seconds: what the user waited for nothing)."""
    latencies: list[float] = []
    deadline = time.monotonic() + seconds
    with requests.Session() as session:
        while time.monotonic() < deadline:
            started = time.monotonic()
            try:
                ok = check(session.get(url, timeout=timeout))
            except requests.RequestException:
                ok = False
            latencies.append(time.monotonic() - started if ok else timeout)
    return latencies


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
