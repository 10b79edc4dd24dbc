"""A private PostgreSQL cluster for the tests: Debian's server binaries, no system service.

`Cluster.create(root)` runs `initdb` into `root/data` and `pg_ctl start` on 127.0.0.1 at a free
port, the unix socket in the cluster's own directory. Password authentication (scram) on TCP,
as an operator runs it: the superuser's password is random, kept in a 0600 file, and every DSN
that carries it goes into a chute config written 0600 (tests.helpers.services.write_conf), the
rule chute enforces at start. initdb refuses to run as root, so as root the cluster belongs to
Debian's `postgres` user (created by the postgresql package, `make sysdeps`), in a directory of
its own under /tmp that the test's directory links to (`cluster`) and that `stop()` removes:
pytest keeps /tmp/pytest-of-root at 0700 and puts it back so whenever another session starts,
so a cluster inside it would lose its own files mid-run.

`fresh_database()` is a new empty database (CREATE DATABASE copies template1: milliseconds),
so each test or module gets its own schema without a new cluster.
"""

from __future__ import annotations

import glob
import itertools
import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.helpers.services import free_port

SUPERUSER = "chute"
DRIVER = "postgresql+psycopg"


def server_bindir() -> Path:
    """Debian installs the server binaries off PATH, one directory per major version."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: int(p.split("/")[4]))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    if initdb is None:
        raise RuntimeError("PostgreSQL's initdb is missing: `make sysdeps` installs postgresql")
    return Path(initdb).parent


def _run_as() -> dict[str, Any]:
    """Popen arguments that drop root to `postgres` (initdb and postgres refuse root)."""
    if os.geteuid() != 0:
        return {}
    user = pwd.getpwnam("postgres")
    return {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": [],
            "env": {"PATH": "/usr/bin:/bin", "HOME": str(user.pw_dir), "LC_ALL": "C.UTF-8"}}


def _cluster_dir(root: Path) -> Path:
    """Where the cluster lives: `root` itself, or as root a postgres-owned directory under /tmp
    linked from `root/cluster`."""
    if os.geteuid() != 0:
        return root
    user = pwd.getpwnam("postgres")
    path = Path(tempfile.mkdtemp(prefix="chute-pg-"))
    os.chown(path, user.pw_uid, user.pw_gid)
    (root / "cluster").symlink_to(path)
    return path


@dataclass
class Cluster:
    root: Path
    port: int
    password: str
    bindir: Path
    _names: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    @classmethod
    def create(cls, root: Path) -> Cluster:
        root.mkdir(parents=True, exist_ok=True)
        root = _cluster_dir(root)
        password = secrets.token_urlsafe(18)
        pwfile = root / "superuser.password"
        pwfile.write_text(password)
        pwfile.chmod(0o600)
        if os.geteuid() == 0:
            os.chown(pwfile, pwd.getpwnam("postgres").pw_uid, -1)
        cluster = cls(root, free_port(), password, server_bindir())
        cluster._initdb(pwfile)
        pwfile.unlink()
        cluster._start()
        return cluster

    @property
    def data(self) -> Path:
        return self.root / "data"

    def _tool(self, name: str, *args: str) -> None:
        done = subprocess.run([str(self.bindir / name), *args], capture_output=True, text=True,
                              stdin=subprocess.DEVNULL, timeout=120, **_run_as())
        if done.returncode != 0:
            raise RuntimeError(f"{name} failed ({done.returncode}):\n{done.stdout}\n"
                               f"{done.stderr}")

    def _initdb(self, pwfile: Path) -> None:
        self._tool("initdb", "-D", str(self.data), "-U", SUPERUSER, f"--pwfile={pwfile}",
                   "--auth-host=scram-sha-256", "--auth-local=scram-sha-256",
                   "--encoding=UTF8", "--no-instructions", "--no-sync")

    def _start(self) -> None:
        # fsync off: a test cluster is thrown away, and on a loaded 2-core machine every
        # commit's fsync would make the PostgreSQL runs measure the disk, not chute.
        options = (f"-c listen_addresses=127.0.0.1 -c port={self.port} "
                   f"-c unix_socket_directories={self.root} -c fsync=off "
                   "-c synchronous_commit=off -c full_page_writes=off -c max_connections=300")
        self._tool("pg_ctl", "start", "-w", "-t", "60", "-D", str(self.data),
                   "-l", str(self.root / "postgresql.log"), "-o", options)

    def enable_tls(self) -> None:
        """TLS on (a self-signed certificate made with openssl), from the next restart: libpq
        clients then use it (sslmode prefer, their default)."""
        key, cert = self.data / "server.key", self.data / "server.crt"
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days",
                        "1", "-subj", "/CN=127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                       check=True, capture_output=True, timeout=60)
        key.chmod(0o600)
        if os.geteuid() == 0:
            user = pwd.getpwnam("postgres")
            for path in (key, cert):
                os.chown(path, user.pw_uid, user.pw_gid)
        self.admin("ALTER SYSTEM SET ssl = on")

    def restart(self) -> None:
        """A fast restart (the options of the start kept): every client connection is
        closed by the server, as an operator's restart or a failover does."""
        self._tool("pg_ctl", "restart", "-w", "-t", "60", "-m", "fast", "-D", str(self.data),
                   "-l", str(self.root / "postgresql.log"))

    def stop(self) -> None:
        self._tool("pg_ctl", "stop", "-D", str(self.data), "-m", "immediate", "-w")
        if os.geteuid() == 0:
            shutil.rmtree(self.root, ignore_errors=True)

    def url(self, database: str = "postgres") -> str:
        """The SQLAlchemy URL of `database`, password included: put it only in a 0600 file."""
        return f"{DRIVER}://{SUPERUSER}:{self.password}@127.0.0.1:{self.port}/{database}"

    def admin(self, *statements: str) -> None:
        """Run statements outside a transaction (CREATE DATABASE refuses one)."""
        import psycopg

        with psycopg.connect(host="127.0.0.1", port=self.port, user=SUPERUSER,
                             password=self.password, dbname="postgres",
                             autocommit=True) as conn:
            for statement in statements:
                conn.execute(statement)  # type: ignore[arg-type]

    def fresh_database(self, prefix: str = "chute") -> str:
        """A new empty database; returns its URL."""
        name = f"{prefix}_{os.getpid()}_{next(self._names)}"
        self.admin(f'CREATE DATABASE "{name}"')
        return self.url(name)
