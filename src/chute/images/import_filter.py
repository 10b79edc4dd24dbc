"""Which URLs a web-download import may fetch: Glance's `[import_filtering_opts]` rules.

A port of glance.common.utils.get_validated_address (Glance 33), because web-download makes
the server fetch a URL a user chose (server-side request forgery): the scheme, host and port
are checked against the allow/deny lists (an allow list, when set, wins over its deny list),
numeric shorthands of addresses (`127.1`, `2130706433`) are refused, the host is resolved
once, and loopback and link-local addresses (cloud metadata at 169.254.169.254) are dropped
unless the host is in `allowed_hosts`. The fetch then connects to an address returned here,
so a second resolution cannot point it elsewhere (DNS rebinding).
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from chute.errors import Invalid
from chute.images.options import ImportSettings


@dataclass(frozen=True)
class Target:
    """A URL that passed the filter, and the addresses it may be fetched from."""

    scheme: str
    host: str
    port: int
    path: str
    addresses: tuple[str, ...]


def _normalized(host: str | None) -> str | None:
    if not host:
        return None
    for kind in (ipaddress.IPv4Address, ipaddress.IPv6Address):
        try:
            return str(kind(host))
        except ValueError:
            pass
    if all(c.isdigit() or c == "." for c in host):
        return None  # 2130706433, 127.1: addresses in disguise
    try:
        socket.getaddrinfo(host.rstrip(".") + ".", 80)
    except socket.gaierror:
        return None
    return host


def _resolve(host: str, port: int) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    found: list[ipaddress.IPv4Address | ipaddress.IPv6Address] = []
    for *_, sockaddr in socket.getaddrinfo(host.rstrip(".") + ".", port):
        address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if address not in found:
            found.append(address)
    return found


def _usable(address: ipaddress.IPv4Address | ipaddress.IPv6Address,
            denied: tuple[str, ...]) -> bool:
    check = address
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        check = address.ipv4_mapped
    return not (check.is_loopback or check.is_link_local) and str(address) not in denied


def validate(uri: str, rules: ImportSettings) -> Target:
    """The target of `uri`, or Invalid naming why it may not be fetched."""
    refused = Invalid(f"URI for web-download does not pass filtering: {uri}")
    parts = urlsplit(uri)
    try:
        port = parts.port
    except ValueError:
        raise refused from None
    deny_schemes = () if rules.allowed_schemes else rules.disallowed_schemes
    deny_hosts = () if rules.allowed_hosts else rules.disallowed_hosts
    deny_ports = () if rules.allowed_ports else rules.disallowed_ports
    if not parts.scheme or (rules.allowed_schemes and parts.scheme not in rules.allowed_schemes) \
            or parts.scheme in deny_schemes:
        raise refused
    host = _normalized(parts.hostname)
    if host is None or (rules.allowed_hosts and host not in rules.allowed_hosts) \
            or host in deny_hosts:
        raise refused
    if port is not None and ((rules.allowed_ports and port not in rules.allowed_ports)
                             or port in deny_ports):
        raise refused
    port = port or (443 if parts.scheme == "https" else 80)
    try:
        addresses = _resolve(host, port)
    except (OSError, ValueError):
        raise refused from None
    if rules.allowed_hosts and host in rules.allowed_hosts:
        usable = [str(a) for a in addresses]
    else:
        usable = [str(a) for a in addresses if _usable(a, deny_hosts)]
    if not usable:
        raise refused
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return Target(parts.scheme, host, port, path, tuple(usable))
