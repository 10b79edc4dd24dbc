"""Logging set-up shared by the services: stderr unless `log_file`, DEBUG when `debug`."""

from __future__ import annotations

import logging
import sys

from chute.config import Opt

# [DEFAULT] options of every service, declared here with the set-up that reads them.
OPTIONS = [
    Opt("log_file", "str", "", "Log to this file instead of stderr."),
    Opt("debug", "bool", False, "Log at DEBUG level."),
]
FORMAT = "%(asctime)s.%(msecs)03d %(process)d %(levelname)s %(name)s [%(request_id)s] %(message)s"


class _RequestIdDefault(logging.Filter):
    """Every record gets a request_id so one format serves request and background lines."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = "-"
        return True


def setup(log_file: str | None = None, debug: bool = False) -> None:
    handler: logging.Handler
    if log_file:
        handler = logging.FileHandler(log_file)
    else:
        handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(FORMAT, datefmt="%Y-%m-%d %H:%M:%S"))
    handler.addFilter(_RequestIdDefault())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if debug else logging.INFO)
