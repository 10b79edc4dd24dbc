"""One HTTP session per API, and one place that turns error answers into `RemoteError`.

Glance renders errors through WebOb's negotiation (HTML by default, flat JSON
`{"message", "code", "title"}` when JSON is asked for, plain text otherwise); Nova nests them
(`{"itemNotFound": {"code": 404, "message": "..."}}`). Callers want one line either way, so
every shape is reduced here, once.
"""

from __future__ import annotations

import html
import http.client
import json
import re
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from chute.errors import RemoteError, RemoteUnavailable

if TYPE_CHECKING:
    import requests

# requests (and urllib3 under it) are imported when a session is first used, not with this
# module: they were 40% of the `chute` CLI's import time, and `chute image-download` by id
# never needs them (its two GETs go through http.client: get_json, get_body).


def _broken_body() -> tuple[type[BaseException], ...]:
    """What a streamed body raises when its connection breaks mid-read: the libraries' own
    errors, known only here (Body), so everything above sees RemoteUnavailable."""
    import requests
    import urllib3

    return (requests.RequestException, urllib3.exceptions.HTTPError,
            http.client.HTTPException, OSError)

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
    for holder in (doc, *doc.values()):
        message = holder.get("message") if isinstance(holder, dict) else None
        if isinstance(message, str):
            return message
    return None


def error_message(resp: requests.Response) -> str:
    """The server's explanation of an error answer, as one line (the reason phrase if none)."""
    import requests

    try:
        body = resp.text
    except (requests.RequestException, OSError):
        body = ""
    return explain(resp.status_code, resp.reason, resp.headers.get("Content-Type", ""), body)


def explain(status: int, reason: str | None, ctype: str, body: str) -> str:
    """One line from an error answer's status, Content-Type and body, whichever client read it."""
    fallback = f"{status} {reason or ''}".strip()
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


class Body:
    """The unread body of a successful streamed answer; a connection that breaks while it is
    read raises RemoteUnavailable naming `endpoint`, never a library's exception.

    Read through http.client's response under urllib3's: its readinto() fills the caller's
    buffer from the socket, where urllib3's reads into a new bytes object and copies that
    over (a second copy of every byte of an image). Every read goes that way, so urllib3's
    own count of the body is never consulted (the answer is closed, not reused, after); a
    body that ends before its Content-Length is reported as urllib3 would.
    """

    def __init__(self, resp: requests.Response, endpoint: str) -> None:
        self._resp, self.endpoint = resp, endpoint
        inner = getattr(resp.raw, "_fp", None)
        self._fp: http.client.HTTPResponse | None = (
            inner if isinstance(inner, http.client.HTTPResponse) else None)
        self._read = 0

    @property
    def status(self) -> int:
        return self._resp.status_code

    def header(self, name: str) -> str:
        return str(self._resp.headers.get(name, ""))

    def read(self, size: int) -> bytes:
        """Exactly `size` bytes unless the body ends first."""
        try:
            data = bytes(self._fp.read(size) if self._fp else self._resp.raw.read(size))
        except _broken_body() as exc:
            raise RemoteUnavailable(f"{self.endpoint} broke off a range answer: {exc}") from None
        self._check_end(len(data), size, "a range answer")
        return data

    def readinto(self, buffer: memoryview, ranges: bool = False) -> int:
        """Up to len(buffer) bytes straight into `buffer` (0: the body ended). `ranges`: a
        range answer is being read (the error then says so, as read() does)."""
        try:
            step = int(self._fp.readinto(buffer) if self._fp else self._resp.raw.readinto(buffer))
        except _broken_body() as exc:
            if ranges:
                raise RemoteUnavailable(f"{self.endpoint} broke off a range answer: "
                                        f"{exc}") from None
            raise RemoteUnavailable(f"{self.endpoint} broke off the download: "
                                    f"{_reason(exc)}") from None
        self._check_end(step, len(buffer), "a range answer" if ranges else "the download")
        return step

    def _check_end(self, got: int, asked: int, what: str) -> None:
        """http.client ends a body cut short like a whole one: say it was cut, as urllib3."""
        self._read += got
        left = self._fp.length if self._fp is not None else None
        if asked and not got and left:
            raise RemoteUnavailable(f"{self.endpoint} broke off {what}: IncompleteRead("
                                    f"{self._read} bytes read, {left} more expected)")

    def close(self) -> None:
        self._resp.close()

    def __enter__(self) -> Body:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


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
        self._headers = {"User-Agent": USER_AGENT, "Accept": "application/json"}
        if token:
            self._headers["X-Auth-Token"] = token
        self._session: requests.Session | None = None

    @property
    def session(self) -> requests.Session:
        """The requests session, made on first use; from then on its headers are the ones
        every request of this API sends (http.client's too)."""
        if self._session is None:
            self._session = _new_session(self._headers)
        return self._session

    @property
    def headers(self) -> dict[str, str]:
        """The headers every request sends (User-Agent, Accept, X-Auth-Token)."""
        return dict(self._session.headers if self._session is not None else self._headers)

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """Send one request; 4xx/5xx become RemoteError, no answer becomes RemoteUnavailable."""
        url = path if path.startswith(("http://", "https://")) else self.endpoint + path
        kwargs.setdefault("timeout", self.timeout)
        import requests

        try:
            resp = self.session.request(method, url, **kwargs)
        except requests.Timeout:
            raise self._timed_out() from None
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

    def send_body(self, method: str, path: str, headers: dict[str, str], size: int,
                  write: Callable[[socket.socket], None]) -> None:
        """Send one request whose `size`-byte body `write(sock)` puts on the socket itself.

        requests/urllib3 only send bodies from Python bytes; this exists so an upload can send
        from one reused buffer (see ImageClient.upload). Errors become the same RemoteError /
        RemoteUnavailable as `request`. The socket has the client's timeout while the body
        goes out (a server that stops reading), and none while waiting for the answer, which
        comes only after the server has hashed and inspected everything.
        """
        conn, target = self._connection(path)
        try:
            self._send_head(conn, method, target, {**headers, "Content-Length": str(size),
                                                   "Connection": "close"})
            try:
                write(conn.sock)
            except (ConnectionError, TimeoutError) as exc:
                raise self._early_answer(conn) or self._broken(exc) from None
            conn.sock.settimeout(None)
            self._check_answer(conn)
        except http.client.HTTPException as exc:
            raise self._failed(exc) from None
        finally:
            conn.close()

    @contextmanager
    def get_body(self, path: str, headers: dict[str, str]) -> Iterator[http.client.HTTPResponse]:
        """GET `path` on a connection of its own; yields the successful answer, body unread,
        and closes the connection on leaving.

        For reading a large body with readinto() straight into the caller's buffers:
        urllib3's readinto reads into a new bytes object and copies it over. Errors become
        the same RemoteError / RemoteUnavailable as `request`; reads of the body keep the
        client's timeout and raise OSError / http.client.HTTPException for the caller.
        """
        conn, target = self._connection(path)
        try:
            self._send_head(conn, "GET", target, {**headers, "Connection": "close"})
            try:
                resp = conn.getresponse()
            except OSError as exc:
                raise self._broken(exc) from None
            except http.client.HTTPException as exc:
                raise self._failed(exc) from None
            if resp.status >= 400:
                raise _answer_error(resp, resp.read(64 << 10))
            yield resp
        finally:
            conn.close()

    def _connection(self, path: str) -> tuple[http.client.HTTPConnection, str]:
        """A connection of its own to the endpoint (not one of the session's pool), and the
        request target of `path` on it."""
        parts = urlsplit(self.endpoint + path)
        connection = (http.client.HTTPSConnection if parts.scheme == "https"
                      else http.client.HTTPConnection)
        conn = connection(parts.hostname or "", parts.port, timeout=self.timeout)
        return conn, parts.path + (f"?{parts.query}" if parts.query else "")

    def _failed(self, exc: http.client.HTTPException) -> RemoteUnavailable:
        return RemoteUnavailable(f"request to {self.endpoint} failed: "
                                 f"{type(exc).__name__} {exc}".rstrip())

    def _send_head(self, conn: http.client.HTTPConnection, method: str, target: str,
                   headers: dict[str, str], body: bytes | None = None) -> None:
        try:
            conn.putrequest(method, target, skip_accept_encoding=True)
            for name, value in {**self.headers, **headers}.items():
                if name.lower() != "accept-encoding":  # this path does not decode gzip
                    conn.putheader(name, value)
            conn.endheaders(body)
        except TimeoutError:
            raise self._timed_out() from None
        except OSError as exc:
            raise RemoteUnavailable(f"cannot reach {self.endpoint}: {_reason(exc)}") from None

    def _check_answer(self, conn: http.client.HTTPConnection) -> None:
        try:
            error = _read_answer(conn)
        except OSError as exc:
            raise self._broken(exc) from None
        if error is not None:
            raise error

    def _early_answer(self, conn: http.client.HTTPConnection) -> RemoteError | None:
        """The error a server answered before it stopped reading (a size cap, a format it
        refuses, an image not queued), read as urllib3 does after a broken pipe; None when
        the connection holds no answer."""
        try:
            conn.sock.settimeout(min(self.timeout, 5))
            return _read_answer(conn)
        except (OSError, http.client.HTTPException):
            return None

    def _broken(self, exc: BaseException) -> RemoteUnavailable:
        if isinstance(exc, TimeoutError):
            return self._timed_out()
        return RemoteUnavailable(f"{self.endpoint} broke off the request: {_reason(exc)}")

    def _timed_out(self) -> RemoteUnavailable:
        return RemoteUnavailable(f"{self.endpoint} did not answer within {self.timeout:g} s")

    def call_json(self, method: str, path: str, doc: Any = None,
                  headers: dict[str, str] | None = None) -> Any:
        """One request on a connection of its own (http.client, as get_body), `doc` sent as
        JSON, and its JSON answer parsed. The image lookup of `chute image-download` and the
        create of `chute image-create --file` go this way, so neither imports requests (40%
        of the CLI's import time). Errors as `request`'s."""
        extra = {**(headers or {}), "Connection": "close"}
        body = None if doc is None else json.dumps(doc).encode()
        if body is not None:
            extra.update({"Content-Type": "application/json", "Content-Length": str(len(body))})
        conn, target = self._connection(path)
        try:
            self._send_head(conn, method, target, extra, body)
            try:
                resp = conn.getresponse()
                answer = resp.read()
            except TimeoutError:
                raise self._timed_out() from None
            except OSError as exc:
                raise self._broken(exc) from None
            except http.client.HTTPException as exc:
                raise self._failed(exc) from None
        finally:
            conn.close()
        if resp.status >= 400:
            raise _answer_error(resp, answer)
        try:
            return json.loads(answer)
        except ValueError:
            raise RemoteError(resp.status, f"{method} {path} answered with a body that is "
                                           "not JSON") from None

    def call_json_object(self, method: str, path: str, doc: Any = None,
                         headers: dict[str, str] | None = None) -> dict[str, Any]:
        answer = self.call_json(method, path, doc, headers)
        if not isinstance(answer, dict):
            raise RemoteError(200, f"{method} {path} answered with JSON that is not an object")
        return answer

    def json(self, method: str, path: str, **kwargs: Any) -> Any:
        resp = self.request(method, path, **kwargs)
        try:
            return resp.json()
        except ValueError:
            raise RemoteError(resp.status_code,
                              f"{method} {path} answered with a body that is not JSON") from None

    def json_object(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        doc = self.json(method, path, **kwargs)
        if not isinstance(doc, dict):
            raise RemoteError(200, f"{method} {path} answered with JSON that is not an object")
        return doc

    def json_list(self, method: str, path: str, **kwargs: Any) -> list[Any]:
        doc = self.json(method, path, **kwargs)
        if not isinstance(doc, list):
            raise RemoteError(200, f"{method} {path} answered with JSON that is not a list")
        return doc

    def close(self) -> None:
        if self._session is not None:
            self._session.close()


def _new_session(headers: dict[str, str]) -> requests.Session:
    import requests
    from requests.adapters import HTTPAdapter
    from urllib3.util.retry import Retry

    session = requests.Session()
    # A pooled keep-alive connection the server closed just as we reused it fails with
    # "Remote end closed connection"; one immediate retry is safe for reads only.
    retry = Retry(total=1, connect=1, read=1, status=0, other=0, redirect=0,
                  allowed_methods=frozenset({"GET", "HEAD"}), raise_on_status=False)
    for scheme in ("http://", "https://"):
        session.mount(scheme, HTTPAdapter(max_retries=retry))
    session.headers.update(headers)
    return session


def _read_answer(conn: http.client.HTTPConnection) -> RemoteError | None:
    """Read the whole answer; the RemoteError it stands for, None for a success."""
    resp = conn.getresponse()
    body = resp.read()
    if resp.status < 400:
        return None
    return _answer_error(resp, body)


def _answer_error(resp: http.client.HTTPResponse, body: bytes) -> RemoteError:
    return RemoteError(resp.status, explain(resp.status, resp.reason,
                                            resp.getheader("Content-Type", ""),
                                            body.decode("utf-8", "replace")))


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
