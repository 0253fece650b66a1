"""A throwaway PostgreSQL server for tests: Debian's ``postgresql`` (``make system-deps`` installs
it), initialised into a fresh folder and started on a free loopback port, stopped and removed at the
end. PostgreSQL refuses to run as root, so under root the server runs as the ``postgres`` user
(``nobody`` where that does not exist) through ``runuser``, in a folder that user owns."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg2

SUPERUSER = "recs"


@dataclass(frozen=True)
class PostgresServer:
    host: str
    port: int
    user: str = SUPERUSER

    def connect(self, database: str = "postgres"):
        return psycopg2.connect(host=self.host, port=self.port, user=self.user, dbname=database)

    def create_database(self, name: str) -> str:
        with closing(self.connect()) as connection:
            connection.autocommit = True
            connection.cursor().execute(f'create database "{name}"')
        return name


def postgres_binary(name: str) -> str:
    """``name`` (initdb, pg_ctl) from PATH or Debian's versioned folder, the newest version first."""
    found = shutil.which(name) or next(iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)), None)
    if found is None:
        raise RuntimeError(f"PostgreSQL's {name} not found: install Debian's postgresql (make system-deps)")
    return found


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _unprivileged_user() -> str | None:
    """The user the server runs as: None (ourselves) unless we are root."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    raise RuntimeError("running as root and neither a postgres nor a nobody user exists to run PostgreSQL")


@contextmanager
def running_postgres() -> Iterator[PostgresServer]:
    user = _unprivileged_user()
    root = Path(tempfile.mkdtemp(prefix="recs-postgres-"))
    as_user = ["runuser", "-u", user, "--"] if user else []
    if user:
        entry = pwd.getpwnam(user)
        os.chown(root, entry.pw_uid, entry.pw_gid)
    data, port = root / "data", free_port()
    try:
        subprocess.run(
            [*as_user, postgres_binary("initdb"), "-D", str(data), "-U", SUPERUSER, "--auth=trust", "--no-sync"],
            check=True,
            capture_output=True,
        )
        options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off"
        start = [postgres_binary("pg_ctl"), "-D", str(data), "-l", str(root / "server.log"), "-w", "-o", options]
        subprocess.run([*as_user, *start, "start"], check=True, capture_output=True)
        try:
            yield PostgresServer("127.0.0.1", port)
        finally:
            stop = [postgres_binary("pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"]
            subprocess.run([*as_user, *stop], check=True, capture_output=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)
