"""The tokens file of `auth_strategy = tokens`: static tokens for sites without Keystone.

One entry a line, `TOKEN USER_ID PROJECT_ID ROLE[,ROLE...]`; `#` starts a comment:

    # token                             user          project   roles
    5d3c0e...                           alice         demo      member
    9a41b7...                           chute-compute service   service

The file is a list of secrets: it is refused (naming it) when its group or others may read
or write it. Tokens are kept as their SHA-256 digests, compared with
`hmac.compare_digest`, every entry each time, so the time an answer takes says nothing
about how much of a guess was right, nor which entry matched.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from dataclasses import dataclass

from chute.auth.context import RequestContext, with_implied

MIN_TOKEN_LENGTH = 16  # a shorter token is guessable over the network


class TokensFileError(ValueError):
    """The file cannot be used; the message says why (the caller names the option)."""


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).digest()


@dataclass(frozen=True)
class TokenTable:
    """Token digest -> the identity it authenticates."""

    path: str
    entries: dict[bytes, RequestContext]

    def identify(self, token: str | None) -> RequestContext | None:
        """The identity `token` authenticates, or None. Every entry is compared, in constant
        time, whether or not one matched (a site has tens of tokens, not millions)."""
        if not token:
            return None
        digest, found = _digest(token), None
        for stored, identity in self.entries.items():
            if hmac.compare_digest(stored, digest):
                found = identity
        if found is None:
            return None
        return RequestContext(found.user_id, found.project_id, found.roles, auth_token=token)


def _check_mode(path: str) -> None:
    try:
        mode = os.stat(path).st_mode & 0o7777
    except OSError as exc:
        raise TokensFileError(f"{path} cannot be read: {exc.strerror}") from None
    if mode & 0o077:
        raise TokensFileError(f"{path} holds secrets but its group or others may access it "
                              f"(mode {mode:04o}); chmod 600 {path}")


def _entry(path: str, number: int, line: str) -> tuple[bytes, RequestContext]:
    fields = line.split()
    if len(fields) != 4:
        raise TokensFileError(f"{path} line {number}: expected TOKEN USER_ID PROJECT_ID "
                              f"ROLES, found {len(fields)} fields")
    token, user, project, roles = fields
    if len(token) < MIN_TOKEN_LENGTH:
        raise TokensFileError(f"{path} line {number}: the token is shorter than "
                              f"{MIN_TOKEN_LENGTH} characters")
    return _digest(token), RequestContext(user, project, with_implied(roles.split(",")))


def load(path: str) -> TokenTable:
    """Read and check the tokens file; TokensFileError says what is wrong and where."""
    _check_mode(path)
    try:
        with open(path, encoding="utf-8") as handle:
            lines = handle.read().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise TokensFileError(f"{path} cannot be read: {exc}") from None
    entries: dict[bytes, RequestContext] = {}
    for number, raw in enumerate(lines, 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        digest, identity = _entry(path, number, line)
        if digest in entries:
            raise TokensFileError(f"{path} line {number}: this token is listed twice")
        entries[digest] = identity
    if not entries:
        raise TokensFileError(f"{path} lists no token")
    return TokenTable(path, entries)
