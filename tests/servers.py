"""Real PostgreSQL for the tests: the one named by DATABASE_URL, or a private one.

Without DATABASE_URL a private server is created from the installed binaries (initdb and
pg_ctl) in a temporary directory, on a free port, and removed afterwards. Where neither is
possible the tests that need it are skipped with the reason; on CI that skip is a failure.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from harness import free_port


class Unavailable(Exception):
    """The server cannot be had here; the message says why."""


def _pg_binary(name: str) -> str:
    found = shutil.which(name)
    if found:
        return found
    for candidate in sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), reverse=True):
        return str(candidate)
    raise Unavailable(f"{name} not found: install PostgreSQL or set DATABASE_URL")


def plain_url(url: str) -> str:
    """postgresql+asyncpg://... -> postgresql://... (what psql understands)."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(scheme="postgresql"))


def with_database(url: str, name: str) -> str:
    parts = urlsplit(plain_url(url))
    return urlunsplit(parts._replace(path=f"/{name}"))


def psql(url: str, sql: str) -> None:
    result = subprocess.run(
        [_pg_binary("psql"), plain_url(url), "-v", "ON_ERROR_STOP=1", "-qc", sql],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if result.returncode != 0:
        raise Unavailable(f"psql {sql!r} failed: {result.stderr.strip()}")


@contextmanager
def private_postgres() -> Iterator[str]:
    """initdb + pg_ctl start on a free port; yields an admin URL."""
    initdb, pg_ctl = _pg_binary("initdb"), _pg_binary("pg_ctl")
    base = Path(tempfile.mkdtemp(prefix="chf-pg-"))
    data, sockets = base / "data", base / "run"
    sockets.mkdir()
    prefix: list[str] = []
    if os.geteuid() == 0:  # initdb refuses to run as root: use the postgres account
        try:
            account = pwd.getpwnam("postgres")
        except KeyError:
            raise Unavailable("running as root and there is no postgres user for initdb") from None
        for path in (base, sockets):
            os.chown(path, account.pw_uid, account.pw_gid)
        prefix = [shutil.which("runuser") or "runuser", "-u", "postgres", "--"]
    port = free_port()
    try:
        init = subprocess.run(
            [*prefix, initdb, "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8"],
            capture_output=True,
            text=True,
            timeout=120,
        )
        if init.returncode != 0:
            raise Unavailable(f"initdb failed: {init.stderr.strip()[-500:]}")
        options = f"-p {port} -k {sockets} -h 127.0.0.1 -c fsync=off -c full_page_writes=off"
        start = subprocess.run(
            [
                *prefix,
                pg_ctl,
                "-D",
                str(data),
                "-o",
                options,
                "-l",
                str(base / "log"),
                "-w",
                "-t",
                "60",
                "start",
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
        if start.returncode != 0:
            log = (base / "log").read_text() if (base / "log").exists() else ""
            raise Unavailable(f"pg_ctl start failed: {start.stderr.strip()} {log[-500:]}")
        try:
            yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
        finally:
            subprocess.run(
                [*prefix, pg_ctl, "-D", str(data), "-m", "immediate", "-w", "stop"],
                capture_output=True,
                timeout=120,
            )
    finally:
        shutil.rmtree(base, ignore_errors=True)


@contextmanager
def postgres_server() -> Iterator[str]:
    """An admin URL for a real PostgreSQL server: DATABASE_URL, else a private one."""
    given = os.environ.get("DATABASE_URL")
    if given:
        psql(given, "SELECT 1")
        yield given
        return
    with private_postgres() as url:
        yield url


@contextmanager
def fresh_database(admin_url: str, label: str) -> Iterator[str]:
    """A new, empty database on the server; dropped afterwards."""
    name = f"chf_{label.replace('-', '_')}_{uuid.uuid4().hex[:8]}"
    psql(admin_url, f'CREATE DATABASE "{name}"')
    try:
        yield with_database(admin_url, name)
    finally:
        psql(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
