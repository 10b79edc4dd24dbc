"""Falcon plumbing shared by chute-api and chute-compute.

- `RequestIdMiddleware`: every response carries `x-openstack-request-id: req-<uuid>` (what Glance
  and Nova send; clients log it) and every request logs exactly one line with that id, naming
  the request target as sent (`request_target`), never the percent-decoded path.
- `install_error_handling(app, table, renderer)`: one place per API that turns `chute.errors`
  classes into HTTP statuses (the `table`) and bodies (the `renderer`: Glance/WebOb negotiation
  for images, Nova's `{"itemNotFound": {...}}` for compute). Anything unexpected becomes a logged
  500 whose body says nothing about internals.
"""

from __future__ import annotations

import contextvars
import html
import json
import logging
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable
from urllib.parse import quote

import falcon

from chute.errors import ChuteError

# The app type every chute API builds (falcon's App is generic in its request and response).
App = falcon.App[falcon.Request, falcon.Response]

LOG = logging.getLogger("chute.http")

request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")


class RequestIdLogFilter(logging.Filter):
    """Stamp records logged while a request runs with its id, so service-layer lines match it."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", "-") == "-":
            record.request_id = request_id_var.get()
        return True


def install_log_filter() -> None:
    """Attach RequestIdLogFilter to the root handlers set up by chute.log.setup."""
    for handler in logging.getLogger().handlers:
        handler.addFilter(RequestIdLogFilter())


# The methods Glance's router knows; any other is 501 where no route matches (and 405 where one
# does), never falcon's 400 "Invalid HTTP method".
STANDARD_METHODS = ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH")


class _KnownRouteMethods:
    """405 with the route's Allow for a method outside STANDARD_METHODS on a known path.
    OPTIONS keeps falcon's own 200 + Allow."""

    def process_resource(self, req: falcon.Request, resp: falcon.Response, resource: Any,
                         params: dict[str, Any]) -> None:
        if req.method in STANDARD_METHODS or req.method == "OPTIONS":
            return
        allowed = [m for m in STANDARD_METHODS if hasattr(resource, f"on_{m.lower()}")]
        raise falcon.HTTPMethodNotAllowed(allowed + ["OPTIONS"])


def _unrouted(req: falcon.Request, resp: falcon.Response, **params: Any) -> None:
    """The sink for paths no route matches: 404, or 501 for a method Glance does not know."""
    if req.method in STANDARD_METHODS:
        raise falcon.HTTPRouteNotFound()
    raise falcon.HTTPNotImplemented(
        description=f"The method {req.method} is not implemented by this server.")


def install_method_rules(app: App) -> None:
    """Answer methods and unknown paths as Glance does (501/405/404, see STANDARD_METHODS)."""
    app.add_middleware(_KnownRouteMethods())
    app.add_sink(_unrouted)


def request_target(req: falcon.Request) -> str:
    """The path and query as the client sent them (gunicorn's RAW_URI), not percent-decoded:
    what is logged of a request is what came over the wire (chute.log escapes the rest)."""
    raw = req.env.get("RAW_URI") or req.env.get("REQUEST_URI")
    if raw:
        return str(raw)
    path = quote(req.env.get("PATH_INFO", "").encode("latin-1", "replace"), safe="/;:@&=+$,!~*'()%")
    query = req.env.get("QUERY_STRING", "")
    return path + (f"?{query}" if query else "")


class RequestIdMiddleware:
    """Give each request an id, put it on the response, log one line when the response is done."""

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        req.context.request_id = "req-" + str(uuid.uuid4())
        req.context.started = time.monotonic()
        req.context.token = request_id_var.set(req.context.request_id)
        resp.set_header("x-openstack-request-id", req.context.request_id)

    def process_response(self, req: falcon.Request, resp: falcon.Response,
                         resource: Any, req_succeeded: bool) -> None:
        request_id = getattr(req.context, "request_id", None)
        if request_id is None:  # process_request never ran (early failure)
            request_id = "req-" + str(uuid.uuid4())
        resp.set_header("x-openstack-request-id", request_id)
        started = getattr(req.context, "started", time.monotonic())
        length: int | str | None = resp.content_length
        if length is None:
            length = len(resp.data) if resp.data is not None else "-"
        LOG.info("%s %s status: %s len: %s time: %.4f", req.method, request_target(req),
                 resp.status_code, length, time.monotonic() - started,
                 extra={"request_id": request_id})
        token = getattr(req.context, "token", None)
        if token is not None:
            request_id_var.reset(token)
            req.context.token = None


@dataclass
class ErrorInfo:
    """What a renderer needs: the status, its reason phrase, the message, extra headers."""

    status: int
    message: str
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def reason(self) -> str:
        line: str = falcon.code_to_http_status(self.status)
        return line.split(" ", 1)[1]

    @property
    def status_line(self) -> str:
        return f"{self.status} {self.reason}"


Renderer = Callable[[falcon.Request, ErrorInfo], tuple[str, bytes]]


def _accept_q(accept: str, offer: str) -> float:
    """q of the most specific media range in `accept` that matches `offer` (0 if none)."""
    otype, osub = offer.split("/")
    best, best_q = -1, 0.0
    for part in accept.split(","):
        pieces = [p.strip() for p in part.split(";")]
        media = pieces[0].lower()
        if "/" not in media:
            continue
        mtype, msub = media.split("/", 1)
        q = 1.0
        for param in pieces[1:]:
            if param.startswith("q="):
                try:
                    q = float(param[2:])
                except ValueError:
                    q = 0.0
        if mtype == "*" and msub == "*":
            specificity = 0
        elif mtype == otype and msub == "*":
            specificity = 1
        elif mtype == otype and msub == osub:
            specificity = 2
        else:
            continue
        if specificity > best:
            best, best_q = specificity, q
    return best_q


def negotiate(accept: str | None, offers: Iterable[str]) -> str | None:
    """WebOb's acceptable_offers()[0]: highest q wins, ties go to the earlier offer."""
    offers = list(offers)
    if accept is None:
        return offers[0]
    scored = [(offer, _accept_q(accept, offer)) for offer in offers]
    scored = [item for item in scored if item[1] > 0]
    if not scored:
        return None
    return max(scored, key=lambda item: (item[1], -offers.index(item[0])))[0]


def webob_renderer(req: falcon.Request, info: ErrorInfo) -> tuple[str, bytes]:
    """Error bodies as Glance's WebOb produces them: HTML by default, flat JSON on request."""
    match = negotiate(req.get_header("Accept"), ["text/html", "application/json"])
    message = info.message
    if match == "application/json":
        body = {"message": message + "<br /><br />\n\n\n", "code": info.status_line,
                "title": info.reason}
        return "application/json", json.dumps(body).encode()
    if match == "text/html":
        text = (f"<html><head><title>{info.status_line}</title></head><body>"
                f"<h1>{info.status_line}</h1>{html.escape(message, quote=False)}<br /><br />\n\n\n"
                f"</body></html>")
        return "text/html; charset=UTF-8", text.encode()
    return "text/plain; charset=UTF-8", f"{info.status_line}\n\n{message}\n\n".encode()


def _apply(req: falcon.Request, resp: falcon.Response, info: ErrorInfo,
           renderer: Renderer) -> None:
    content_type, body = renderer(req, info)
    resp.status = falcon.code_to_http_status(info.status)
    resp.content_type = content_type
    resp.data = body
    resp.stream = None
    for name, value in info.headers.items():
        resp.set_header(name, value)


# WebOb's explanations, for errors falcon raises without a description (unknown route, method).
_EXPLANATIONS = {
    404: "The resource could not be found.",
    405: "The method {method} is not allowed for this resource.",
}


def install_error_handling(app: App, table: dict[type[ChuteError], int],
                           renderer: Renderer) -> None:
    """Map chute errors through `table` (most specific class wins) and render with `renderer`."""

    def status_for(exc: ChuteError) -> int:
        for cls in type(exc).__mro__:
            if cls in table:
                return table[cls]
        return 500

    def on_chute_error(req: falcon.Request, resp: falcon.Response, exc: ChuteError,
                       params: dict[str, Any]) -> None:
        status = status_for(exc)
        if status >= 500:
            LOG.error("%s %s failed: %s", req.method, request_target(req), exc.message)
            info = ErrorInfo(status, "The server could not complete the request.")
        else:
            info = ErrorInfo(status, exc.message, dict(getattr(exc, "headers", {}) or {}))
        _apply(req, resp, info, renderer)

    def on_http_error(req: falcon.Request, resp: falcon.Response, exc: falcon.HTTPError,
                      params: dict[str, Any]) -> None:
        message = exc.description or _EXPLANATIONS.get(exc.status_code, exc.title or "")
        if exc.status_code == 405:
            message = message.format(method=req.method)
        info = ErrorInfo(exc.status_code, message, dict(exc.headers or {}))
        _apply(req, resp, info, renderer)

    def on_unexpected(req: falcon.Request, resp: falcon.Response, exc: Exception,
                      params: dict[str, Any]) -> None:
        if isinstance(exc, falcon.HTTPError):
            on_http_error(req, resp, exc, params)
            return
        LOG.exception("%s %s: unexpected error", req.method, request_target(req))
        info = ErrorInfo(500, "The server has either erred or is incapable of performing the "
                              "requested operation.")
        _apply(req, resp, info, renderer)

    app.add_error_handler(Exception, on_unexpected)
    app.add_error_handler(falcon.HTTPError, on_http_error)
    app.add_error_handler(ChuteError, on_chute_error)


def no_body(req: falcon.Request) -> None:
    """Glance rejects a body on routes that take none (GET/DELETE image, tags, actions)."""
    chunked = "chunked" in (req.get_header("Transfer-Encoding") or "").lower()
    if chunked or (req.content_length or 0) > 0:
        raise falcon.HTTPBadRequest(description="A body is not expected with this request.")


# Deepest nesting a request body may have: Glance and Nova documents are 3-4 levels deep; the
# limit keeps a small body of brackets from reaching the parser's recursion limit (a 500).
MAX_JSON_DEPTH = 32


def read_json(req: falcon.Request, limit: int = 1 << 20) -> object:
    """Parse a JSON request body; the error messages are Glance's. The one place request JSON
    is parsed, so the one place hostile but well-formed JSON is refused with a 400: nesting
    deeper than MAX_JSON_DEPTH and strings (keys included) with a lone surrogate (`"\\ud800"`
    is valid JSON but not Unicode: it cannot be stored, logged or sent back as UTF-8)."""
    raw = req.bounded_stream.read(limit + 1)
    if len(raw) > limit:
        raise falcon.HTTPPayloadTooLarge(description="Request body is too large.")
    try:
        body = json.loads(raw or b"null")
    except RecursionError:
        raise _too_deep() from None
    except ValueError:
        raise falcon.HTTPBadRequest(description="Malformed JSON in request body.") from None
    _check_json(body)
    return body


def _too_deep() -> falcon.HTTPBadRequest:
    return falcon.HTTPBadRequest(
        description=f"JSON in request body is nested deeper than {MAX_JSON_DEPTH} levels.")


def _check_json(body: object) -> None:
    """Refuse nesting deeper than MAX_JSON_DEPTH and lone surrogates, without recursion."""
    stack: list[tuple[object, int]] = [(body, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, str):
            _check_text(value)
        elif isinstance(value, (dict, list)):
            if depth > MAX_JSON_DEPTH:
                raise _too_deep()
            if isinstance(value, dict):
                for key, item in value.items():
                    _check_text(key)
                    stack.append((item, depth + 1))
            else:
                stack.extend((item, depth + 1) for item in value)


def _check_text(text: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        bad = text[exc.start]
        raise falcon.HTTPBadRequest(
            description=f"Invalid string in request body: lone surrogate "
                        f"\\u{ord(bad):04x} is not valid Unicode.") from None


def json_response(resp: falcon.Response, body: object, status: int = 200) -> None:
    resp.status = falcon.code_to_http_status(status)
    resp.content_type = "application/json"
    resp.data = json.dumps(body).encode()
