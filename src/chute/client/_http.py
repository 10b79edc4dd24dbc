"""One HTTP session per API, and one place that turns error answers into `RemoteError`.

Glance renders errors through WebOb's negotiation (HTML by default, flat JSON
`{"message", "code", "title"}` when JSON is asked for, plain text otherwise); Nova nests them
(`{"itemNotFound": {"code": 404, "message": "..."}}`). Callers want one line either way, so
every shape is reduced here, once.
"""

from __future__ import annotations

import html
import json
import re
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from chute.errors import RemoteError, RemoteUnavailable

USER_AGENT = "chute-client/0.1"

_TAG = re.compile(r"<[^>]+>")
_HEAD = re.compile(r"<head>.*?</head>|<h1>.*?</h1>", re.IGNORECASE | re.DOTALL)
_SPACE = re.compile(r"\s+")
_STATUS_LINE = re.compile(r"^\d{3} [^\n]*\n")


def _one_line(text: str) -> str:
    return _SPACE.sub(" ", html.unescape(_TAG.sub(" ", text))).strip()


def _json_message(doc: Any) -> str | None:
    """Find the message in Glance's flat JSON or Nova's/glanceclient's nested JSON."""
    if not isinstance(doc, dict):
        return None
    if isinstance(doc.get("message"), str):
        return doc["message"]
    for value in doc.values():
        if isinstance(value, dict) and isinstance(value.get("message"), str):
            return value["message"]
    return None


def error_message(resp: requests.Response) -> str:
    """The server's explanation of an error answer, as one line (the reason phrase if none)."""
    fallback = f"{resp.status_code} {resp.reason or ''}".strip()
    try:
        body = resp.text
    except (requests.RequestException, OSError):
        return fallback
    ctype = resp.headers.get("Content-Type", "")
    text: str | None = None
    if "json" in ctype or body.lstrip().startswith("{"):
        try:
            text = _json_message(json.loads(body))
        except ValueError:
            text = None
    if text is None and "html" in ctype.lower():
        text = _HEAD.sub(" ", body)
    if text is None:
        text = _STATUS_LINE.sub("", body.lstrip(), count=1)
    line = _one_line(text)
    return line or fallback


def remote_error(resp: requests.Response) -> RemoteError:
    return RemoteError(resp.status_code, error_message(resp))


class HttpApi:
    """A `requests.Session` bound to one endpoint, raising chute errors instead of HTTP ones."""

    def __init__(self, endpoint: str, token: str | None = None, timeout: float = 60,
                 strip_suffixes: tuple[str, ...] = ()) -> None:
        endpoint = endpoint.rstrip("/")
        for suffix in strip_suffixes:
            if endpoint.endswith(suffix):
                endpoint = endpoint[: -len(suffix)]
                break
        self.endpoint = endpoint
        self.timeout = timeout
        self.session = requests.Session()
        # A pooled keep-alive connection the server closed just as we reused it fails with
        # "Remote end closed connection"; one immediate retry is safe for reads only.
        retry = Retry(total=1, connect=1, read=1, status=0, other=0, redirect=0,
                      allowed_methods=frozenset({"GET", "HEAD"}), raise_on_status=False)
        for scheme in ("http://", "https://"):
            self.session.mount(scheme, HTTPAdapter(max_retries=retry))
        self.session.headers["User-Agent"] = USER_AGENT
        self.session.headers["Accept"] = "application/json"
        if token:
            self.session.headers["X-Auth-Token"] = token

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """Send one request; 4xx/5xx become RemoteError, no answer becomes RemoteUnavailable."""
        url = path if path.startswith(("http://", "https://")) else self.endpoint + path
        kwargs.setdefault("timeout", self.timeout)
        try:
            resp = self.session.request(method, url, **kwargs)
        except requests.Timeout:
            raise RemoteUnavailable(
                f"{self.endpoint} did not answer within {self.timeout:g} s") from None
        except requests.ConnectionError as exc:
            raise RemoteUnavailable(f"cannot reach {self.endpoint}: {_reason(exc)}") from None
        except requests.RequestException as exc:
            raise RemoteUnavailable(f"request to {self.endpoint} failed: {_reason(exc)}") from None
        if resp.status_code >= 400:
            try:
                raise remote_error(resp)
            finally:
                resp.close()
        return resp

    def json(self, method: str, path: str, **kwargs: Any) -> Any:
        resp = self.request(method, path, **kwargs)
        try:
            return resp.json()
        except ValueError:
            raise RemoteError(resp.status_code,
                              f"{method} {path} answered with a body that is not JSON") from None

    def close(self) -> None:
        self.session.close()


def _reason(exc: BaseException) -> str:
    """The innermost cause ("Connection refused"), not urllib3's nested repr chain."""
    seen = exc
    while seen.__context__ is not None or seen.__cause__ is not None:
        seen = seen.__cause__ or seen.__context__  # type: ignore[assignment]
    text = str(seen) or type(seen).__name__
    match = re.search(r"\[Errno -?\d+\] ([^'\")]+)", str(exc))
    if match:
        return match.group(1).strip()
    return text.split(": ", 1)[-1] if "object at 0x" in text else text
