"""A TCP relay in front of a real server that cuts its first connection part-way: a
mid-stream drop, made by a real socket rather than a mock."""

from __future__ import annotations

import socket
import threading


class CuttingRelay:
    """Relays TCP to `upstream`; the first connection is cut after `cut_after` response bytes."""

    def __init__(self, upstream_port: int, cut_after: int, strip_range: bool = False) -> None:
        self.upstream_port, self.cut_after = upstream_port, cut_after
        self.strip_range = strip_range  # like a proxy that drops Range: the server sends 200
        self.requests: list[bytes] = []
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.connections = 0
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            limit = self.cut_after if self.connections == 1 else None
            threading.Thread(target=self._serve, args=(client, limit), daemon=True).start()

    def _serve(self, client: socket.socket, limit: int | None) -> None:
        upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
        threading.Thread(target=self._upload, args=(client, upstream), daemon=True).start()
        sent = 0
        try:
            while chunk := upstream.recv(65536):
                if limit is not None and sent + len(chunk) > limit:
                    client.sendall(chunk[: limit - sent])
                    break
                client.sendall(chunk)
                sent += len(chunk)
        except OSError:
            pass
        finally:
            for sock in (client, upstream):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                sock.close()

    def _upload(self, client: socket.socket, upstream: socket.socket) -> None:
        try:
            while chunk := client.recv(65536):
                self.requests.append(chunk)
                if self.strip_range:
                    chunk = chunk.replace(b"Range: bytes=", b"X-Ignore: byte=")
                upstream.sendall(chunk)
        except OSError:
            pass

    def close(self) -> None:
        self.listener.close()
