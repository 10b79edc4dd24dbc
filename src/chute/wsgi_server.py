"""Run a WSGI app under gunicorn, embedded, so both services share one production server.

gunicorn rather than uvicorn: on this machine gunicorn served 1 GiB files at 2-3 GB/s (it uses
sendfile(2) for wsgi.file_wrapper responses with a Content-Length) and took uploads at
1.3-3 GB/s, while uvicorn's FileResponse managed 0.6-0.75 GB/s burning ~1 s CPU per GiB.
The gthread worker keeps a slow client from pinning a whole process.
"""

from __future__ import annotations

from typing import Any, Callable

from gunicorn.app.base import BaseApplication


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


def serve(app_factory: Callable[[], Any], host: str, port: int, workers: int,
          threads: int = 8, timeout: int = 120, **extra: Any) -> None:
    """Serve until SIGTERM/SIGINT. `app_factory` runs in each worker after fork."""
    bind = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    options = {
        "bind": bind,
        "workers": workers,
        "worker_class": "gthread",
        "threads": threads,
        "timeout": timeout,
        "graceful_timeout": 10,
        "accesslog": None,
        "errorlog": "-",
        "loglevel": "warning",
        "preload_app": False,
        # No "sendfile" key: gunicorn's Config.sendfile returns False whenever the setting is
        # set at all (it only exists as --no-sendfile), so "sendfile": True turned sendfile(2)
        # OFF and downloads went through 8 KiB read()+send() at ~0.4 GB/s.
        **extra,
    }
    _Embedded(app_factory, options).run()
