"""Compute API microversions: which version a request asked for, and the headers that say so.

The maximum is 2.81. What the clients people use need is below it: openstackclient refuses
`--nic none`/`auto` under 2.37 and `--tag` under 2.52, openstacksdk negotiates down to the
server's maximum for every resource. 2.81 is image pre-caching on host aggregates
(`POST /os-aggregates/{id}/images`, the compute API of many hosts); 2.80 changed only
migrations, which chute does not serve; later versions change hypervisors and volume
attachments (2.82-2.89) or remove what chute serves (2.92 stops the server from generating
keypairs; 2.90 adds the `hostname` field). Every response-shape change Nova made up to 2.81
for servers, flavors and keypairs is applied where it touches what chute serves (views.py
reads the request's version).

The header rules are Nova's (nova/api/openstack/wsgi.py, microversion_parse): the
`OpenStack-API-Version: compute X` header, else the legacy `X-OpenStack-Nova-API-Version: X`;
`latest` is the maximum; none is 2.1; a version outside [min, max] is 406 with Nova's message;
a malformed one is 400.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import falcon

HEADER = "OpenStack-API-Version"
LEGACY_HEADER = "X-OpenStack-Nova-API-Version"
SERVICE = "compute"
_FORMAT = re.compile(r"^([1-9]\d*)\.([1-9]\d*|0)$")


@dataclass(frozen=True, order=True)
class APIVersion:
    """A requested compute microversion; compare with `>=` against `v("2.47")`."""

    major: int
    minor: int

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}"

    def at_least(self, version: str) -> bool:
        return self >= parse(version)


def parse(text: str) -> APIVersion:
    """`"2.37"` -> APIVersion(2, 37); a malformed string is a 400 with Nova's message."""
    match = _FORMAT.match(text.strip())
    if match is None:
        raise falcon.HTTPBadRequest(
            description=f"API Version String {text} is of invalid format. Must be of format "
                        "MajorNum.MinorNum.")
    return APIVersion(int(match.group(1)), int(match.group(2)))


MIN_VERSION = APIVersion(2, 1)
MAX_VERSION = APIVersion(2, 81)


def requested(headers: Mapping[str, str]) -> str | None:
    """The version string the client asked for (header names in upper case, as falcon gives
    them), or None: the `compute` entry of OpenStack-API-Version wins over the legacy header."""
    value = headers.get(HEADER.upper())
    if value:
        for item in value.split(","):
            service, _, version = item.strip().partition(" ")
            if service.lower() == SERVICE:
                return version.strip()
    legacy = headers.get(LEGACY_HEADER.upper())
    return legacy.strip() if legacy else None


def negotiate(text: str | None) -> APIVersion:
    if text is None:
        return MIN_VERSION
    if text.lower() == "latest":
        return MAX_VERSION
    version = parse(text)
    if not MIN_VERSION <= version <= MAX_VERSION:
        raise falcon.HTTPNotAcceptable(
            description=f"Version {text} is not supported by the API. Minimum is "
                        f"{MIN_VERSION} and maximum is {MAX_VERSION}.")
    return version


def of(req: falcon.Request) -> APIVersion:
    """The version of this request, as the middleware negotiated it (2.1 outside /v2.1)."""
    version = getattr(req.context, "api_version", None)
    return version if isinstance(version, APIVersion) else MIN_VERSION


class MicroversionMiddleware:
    """Negotiates the version of every /v2.1 request into `req.context.api_version` and says
    which version answered. The version documents (`/`) are not versioned, as in Nova."""

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        if not req.path.startswith("/v2.1"):
            return
        req.context.api_version = MIN_VERSION  # the headers below even when negotiation fails
        req.context.api_version = negotiate(requested(req.headers))

    def process_response(self, req: falcon.Request, resp: falcon.Response, resource: Any,
                         req_succeeded: bool) -> None:
        if not req.path.startswith("/v2.1"):
            return
        version = str(of(req))
        resp.set_header(HEADER, f"{SERVICE} {version}")
        resp.set_header(LEGACY_HEADER, version)
        resp.set_header("Vary", f"{HEADER}, {LEGACY_HEADER}")
