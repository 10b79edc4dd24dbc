"""Logging set-up shared by the services: stderr unless `log_file`, DEBUG when `debug`.

Every message is one line: `escape` turns what a client could have put in it (newlines and
other control characters, bidirectional overrides, any non-printable, and the backslash that
would make an escape ambiguous) into backslash escapes, so a path or an image name can never
write a line that looks like chute's own. The formatter applies it to every record's message,
so no call site has to remember it (tracebacks, appended after the message, stay multi-line).
"""

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


_SHORT = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\\": "\\\\"}


def escape(text: str) -> str:
    """`text` with every non-printable character and the backslash backslash-escaped."""
    if text.isprintable() and "\\" not in text:
        return text
    out = []
    for ch in text:
        if ch in _SHORT:
            out.append(_SHORT[ch])
        elif ch.isprintable():
            out.append(ch)
        else:
            code = ord(ch)
            out.append(f"\\x{code:02x}" if code < 0x100 else
                       f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}")
    return "".join(out)


class EscapingFormatter(logging.Formatter):
    """chute's format, with the message escaped: one record is one line."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = escape(record.message)
        return super().formatMessage(record)


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
    handler.setFormatter(EscapingFormatter(FORMAT, datefmt="%Y-%m-%d %H:%M:%S"))
    handler.addFilter(_RequestIdDefault())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if debug else logging.INFO)
