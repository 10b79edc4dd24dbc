"""SSH keypairs per user (Nova's os-keypairs): generated or imported, looked up at boot.

Keys are made and read by `cryptography` (what Nova itself uses, nova/crypto.py): an RSA 2048
key whose private half is returned once and never stored, an OpenSSH public key, and Nova's
fingerprint (the MD5 of the key blob, colon-separated hex). Only `ssh` keys: an `x509`
request is refused (chute has no use for certificates; the guest reads an SSH key).

The rules are Nova's (nova/compute/api.py KeypairAPI): names of 1-255 characters among
letters, digits, `-`, `_` and space; a duplicate is 409; at most KEY_PAIRS per user (Nova's
`[quota] key_pairs` default), beyond that 403. This module owns its table in the agent's
state database.
"""

from __future__ import annotations

import base64
import hashlib
import string
from dataclasses import dataclass
from datetime import UTC, datetime

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import (
    Column,
    DateTime,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    func,
    insert,
    select,
)
from sqlalchemy import delete as sql_delete
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError as SQLIntegrityError

from chute.compute.db import create_tables
from chute.compute.instance import utcnow
from chute.errors import (
    BadComputeRequest,
    ComputeConflict,
    ComputeNotFound,
    ComputeQuotaExceeded,
)

KEY_PAIRS = 100  # Nova's [quota] key_pairs default: what chute enforces per user
SSH, X509 = "ssh", "x509"
_SAFE = set(string.ascii_letters + string.digits + "-_ ")

_metadata = MetaData()
keypairs = Table(
    "keypairs", _metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("user_id", String(255), nullable=False),
    Column("name", String(255), nullable=False),
    Column("type", String(16), nullable=False),
    Column("public_key", Text, nullable=False),
    Column("fingerprint", String(255), nullable=False),
    Column("created_at", DateTime, nullable=False),
    UniqueConstraint("user_id", "name"),
)


@dataclass(frozen=True)
class Keypair:
    id: int
    user_id: str
    name: str
    type: str
    public_key: str
    fingerprint: str
    created_at: datetime
    private_key: str | None = None  # only in the answer to a create that generated the key


def fingerprint(public_key: str) -> str:
    """Nova's fingerprint of an OpenSSH public key; 400 if it is not one."""
    try:
        key = serialization.load_ssh_public_key(public_key.strip().encode())
    except (ValueError, TypeError, UnicodeEncodeError):
        raise BadComputeRequest("Keypair data is invalid: failed to generate fingerprint") \
            from None
    blob = key.public_bytes(serialization.Encoding.OpenSSH,
                            serialization.PublicFormat.OpenSSH).split()[1]
    digest = hashlib.md5(base64.b64decode(blob), usedforsecurity=False).hexdigest()
    return ":".join(digest[i:i + 2] for i in range(0, len(digest), 2))


def generate() -> tuple[str, str]:
    """(private key PEM, OpenSSH public key), as Nova generates them."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(serialization.Encoding.PEM,
                                serialization.PrivateFormat.TraditionalOpenSSL,
                                serialization.NoEncryption()).decode()
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                           serialization.PublicFormat.OpenSSH).decode()
    return private, f"{public} Generated-by-chute"


def check_name(name: object) -> str:
    if not isinstance(name, str) or not 1 <= len(name) <= 255:
        raise BadComputeRequest("Keypair data is invalid: Keypair name must be string and "
                                "between 1 and 255 characters long")
    if not set(name) <= _SAFE:
        raise BadComputeRequest("Keypair data is invalid: Keypair name contains unsafe "
                                "characters")
    return name


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _from_row(row: object) -> Keypair:
    return Keypair(row.id, row.user_id, row.name, row.type,  # type: ignore[attr-defined]
                   row.public_key, row.fingerprint,  # type: ignore[attr-defined]
                   _aware(row.created_at))  # type: ignore[attr-defined]


class Keypairs:
    """The keypairs of every user of this agent, in the agent's state database."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        create_tables(engine, _metadata)

    def create(self, user_id: str, name: object, public_key: object = None,
               key_type: object = SSH) -> Keypair:
        """Import `public_key`, or generate a key when it is None (the private half is in
        the returned Keypair only)."""
        checked = check_name(name)
        if key_type not in (SSH, X509):
            raise BadComputeRequest(f"Invalid input for field/attribute type. Value: "
                                    f"{key_type}. '{key_type}' is not one of ['ssh', 'x509']")
        if key_type == X509:
            raise BadComputeRequest("chute-compute supports ssh keypairs only, not x509.")
        private = None
        if public_key is None:
            private, public_key = generate()
        elif not isinstance(public_key, str):
            raise BadComputeRequest("Invalid input for field/attribute public_key: a string "
                                    "is required.")
        print_ = fingerprint(public_key)
        created = utcnow()
        with self.engine.begin() as conn:
            count = conn.execute(select(func.count()).select_from(keypairs)
                                 .where(keypairs.c.user_id == user_id)).scalar_one()
            if count >= KEY_PAIRS:
                raise ComputeQuotaExceeded("Quota exceeded, too many key pairs.")
            try:
                result = conn.execute(insert(keypairs).values(
                    user_id=user_id, name=checked, type=SSH, public_key=public_key.strip(),
                    fingerprint=print_, created_at=created))
            except SQLIntegrityError:
                raise ComputeConflict(f"Key pair '{checked}' already exists.") from None
        key_id = result.inserted_primary_key[0] if result.inserted_primary_key else 0
        return Keypair(int(key_id), user_id, checked, SSH, public_key.strip(), print_, created,
                       private)

    def get(self, user_id: str, name: str) -> Keypair:
        with self.engine.connect() as conn:
            row = conn.execute(select(keypairs).where(keypairs.c.user_id == user_id,
                                                      keypairs.c.name == name)).first()
        if row is None:
            raise ComputeNotFound(f"Keypair {name} not found for user {user_id}")
        return _from_row(row)

    def list(self, user_id: str) -> list[Keypair]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(keypairs).where(keypairs.c.user_id == user_id)
                                .order_by(keypairs.c.name)).all()
        return [_from_row(row) for row in rows]

    def count(self, user_id: str) -> int:
        return len(self.list(user_id))

    def delete(self, user_id: str, name: str) -> None:
        with self.engine.begin() as conn:
            result = conn.execute(sql_delete(keypairs).where(keypairs.c.user_id == user_id,
                                                             keypairs.c.name == name))
        if result.rowcount != 1:
            raise ComputeNotFound(f"Keypair {name} not found for user {user_id}")
