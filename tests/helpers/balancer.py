"""A real load balancer (Debian's HAProxy) in front of several API nodes on loopback.

What an operator puts before chute-api or chute-compute-api nodes: round robin, an HTTP health
check on each node every 200 ms, and a request whose connection to a dead node is refused is
sent to another node (`retries` + `option redispatch`; a body already sent is never replayed, so
an upload cut by a node's death fails and the client retries it).
"""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import requests

from tests.helpers.services import free_port

CONFIG = """\
global
    maxconn 512
defaults
    mode http
    timeout connect 2s
    timeout client 120s
    timeout server 120s
    retries 3
    option redispatch 1
frontend nodes_in
    bind 127.0.0.1:{port}
    default_backend nodes
backend nodes
    balance roundrobin
    option httpchk GET {probe}
    default-server inter 200ms fall 2 rise 1
{servers}
"""


@dataclass
class Balancer:
    """HAProxy on 127.0.0.1:`port`, spreading requests over `backends` (host:port)."""

    root: Path
    backends: list[str]
    probe: str
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> Balancer:
        self.port = self.port or free_port()
        servers = "\n".join(f"    server node{i} {backend} check"
                            for i, backend in enumerate(self.backends))
        config = self.root / "haproxy.cfg"
        config.write_text(CONFIG.format(port=self.port, probe=self.probe, servers=servers))
        with open(self.root / "haproxy.log", "ab") as log:
            self.proc = subprocess.Popen(["haproxy", "-db", "-f", str(config)],
                                         stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"haproxy exited with {self.proc.returncode}: "
                                   f"{(self.root / 'haproxy.log').read_text()[-2000:]}")
            try:
                if requests.get(self.url + self.probe, timeout=1).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"haproxy did not answer on {self.url} within {timeout}s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
