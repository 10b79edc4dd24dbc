"""What the scenarios share during one `python -m bench`: options, data files, running servers.

Servers start on first use and stay up for the following scenarios (starting Glance takes
seconds); everything is stopped by `close()`.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from bench import nginx
from bench.peer import Peer, PeerUnavailable
from bench.procs import Service
from bench.services import ChuteSite, start_api

MiB = 1 << 20
GiB = 1 << 30


@dataclass
class Options:
    size: int = GiB
    runs: int = 5
    peer: bool = True
    api_seconds: float = 10.0
    api_images: int = 1000
    api_connections: int = 32
    install: bool = True  # apt-get install nginx / wrk when missing
    work: Path = Path(__file__).resolve().parent / "work"


class Context:
    def __init__(self, options: Options) -> None:
        self.opts = options
        self.work = options.work.resolve()
        self.work.mkdir(parents=True, exist_ok=True)
        self._site: ChuteSite | None = None
        self._peer: Peer | None = None
        self._peer_service: Service | None = None
        self._peer_reason: str | None = None if options.peer else "disabled (--no-peer)"
        self._nginx: dict[Path, Service] = {}
        self._digests: dict[tuple[Path, str], str] = {}

    # -- data ---------------------------------------------------------------------------

    def random_file(self, size: int, name: str = "random") -> Path:
        """Incompressible bytes, kept between runs of the benchmark (regenerating is slow)."""
        path = self.work / "data" / f"{name}-{size}.bin"
        if path.exists() and path.stat().st_size == size:
            return path
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        with open(tmp, "wb") as handle:
            left = size
            while left:
                step = min(left, 8 * MiB)
                handle.write(os.urandom(step))
                left -= step
        os.replace(tmp, path)
        return path

    def digest(self, path: Path, algorithm: str = "md5") -> str:
        key = (path, algorithm)
        if key not in self._digests:
            with open(path, "rb") as handle:
                self._digests[key] = hashlib.file_digest(handle, algorithm).hexdigest()
        return self._digests[key]

    def scratch(self, name: str) -> Path:
        """An empty directory under work/ for one scenario's outputs."""
        path = self.work / "scratch" / name
        shutil.rmtree(path, ignore_errors=True)
        path.mkdir(parents=True)
        return path

    # -- servers ------------------------------------------------------------------------

    def chute(self) -> ChuteSite:
        if self._site is None:
            root = self.work / "chute"
            shutil.rmtree(root, ignore_errors=True)
            self._site = start_api(root)
        return self._site

    def peer_reason(self) -> str | None:
        """None when the peer runs (starting it on first call); else why it cannot."""
        if self._peer_service is None and self._peer_reason is None:
            self._peer = Peer(self.work)
            try:
                self._peer_service = self._peer.start()
            except PeerUnavailable as exc:
                self._peer_reason = str(exc)
        return self._peer_reason

    def peer_skip(self) -> str | None:
        reason = self.peer_reason()
        return None if reason is None else f"peer unavailable: {reason}"

    @property
    def peer(self) -> Peer:
        assert self._peer is not None and self._peer_service is not None
        return self._peer

    def nginx(self, serve_dir: Path) -> Service:
        if serve_dir not in self._nginx:
            self._nginx[serve_dir] = nginx.start(self.work / "nginx" / str(len(self._nginx)),
                                                 serve_dir, self.opts.install)
        return self._nginx[serve_dir]

    def close(self) -> None:
        for service in self._nginx.values():
            service.stop()
        self._nginx.clear()
        if self._site is not None:
            self._site.stop()
            self._site = None
        if self._peer is not None:
            self._peer.stop()
