"""Real PostgreSQL and Redis for the tests: the ones named by DATABASE_URL and REDIS_URL, or
private ones.

Without DATABASE_URL a private server is created from the installed binaries (initdb and
pg_ctl) in a temporary directory, on a free port, and removed afterwards. Where neither is
possible the tests that need it are skipped with the reason; on CI that skip is a failure.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
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


def psql(url: str, sql: str) -> str:
    """Run `sql` and return its rows, unaligned, one per line."""
    result = subprocess.run(
        [_pg_binary("psql"), plain_url(url), "-X", "-v", "ON_ERROR_STOP=1", "-qAtc", sql],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if result.returncode != 0:
        raise Unavailable(f"psql {sql!r} failed: {result.stderr.strip()}")
    return result.stdout.strip()


@dataclass
class PrivatePostgres:
    """A server of its own data directory on 127.0.0.1:`port`, stopped and started at will."""

    base: Path
    port: int
    prefix: list[str]

    @property
    def url(self) -> str:
        """An admin URL."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _pg_ctl(self, *args: str) -> subprocess.CompletedProcess[str]:
        data = str(self.base / "data")
        return subprocess.run(
            [*self.prefix, _pg_binary("pg_ctl"), "-D", data, *args],
            capture_output=True,
            text=True,
            timeout=120,
        )

    def start(self) -> None:
        sockets = self.base / "run"
        options = f"-p {self.port} -k {sockets} -h 127.0.0.1 -c fsync=off -c full_page_writes=off"
        log = self.base / "log"
        start = self._pg_ctl("-o", options, "-l", str(log), "-w", "-t", "60", "start")
        if start.returncode != 0:
            text = log.read_text() if log.exists() else ""
            raise Unavailable(f"pg_ctl start failed: {start.stderr.strip()} {text[-500:]}")

    def stop(self, mode: str = "fast") -> None:
        """`fast`: open sessions are cut and the server shuts down cleanly, as in a
        failover or a restart for maintenance; `immediate`: as in a crash."""
        self._pg_ctl("-m", mode, "-w", "stop")


@contextmanager
def restartable_postgres() -> Iterator[PrivatePostgres]:
    """initdb + pg_ctl start on a free port; removed afterwards."""
    initdb = _pg_binary("initdb")
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
    server = PrivatePostgres(base, free_port(), prefix)
    try:
        init = subprocess.run(
            [*prefix, initdb, "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8"],
            capture_output=True,
            text=True,
            timeout=120,
        )
        if init.returncode != 0:
            raise Unavailable(f"initdb failed: {init.stderr.strip()[-500:]}")
        server.start()
        try:
            yield server
        finally:
            server.stop("immediate")
    finally:
        shutil.rmtree(base, ignore_errors=True)


@contextmanager
def private_postgres() -> Iterator[str]:
    """initdb + pg_ctl start on a free port; yields an admin URL."""
    with restartable_postgres() as server:
        yield server.url


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


def redis_answers(host: str, port: int) -> bool:
    """Whether a Redis server answers PING at host:port."""
    try:
        with socket.create_connection((host, port), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


@dataclass
class PrivateRedis:
    """A redis-server without persistence on 127.0.0.1:`port`, started and stopped at will."""

    port: int
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise Unavailable("redis-server not found: install Redis or set REDIS_URL")
        options = ["--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        self.process = subprocess.Popen(
            [binary, *options, "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while not redis_answers("127.0.0.1", self.port):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.kill()
                raise Unavailable(f"redis-server did not start on port {self.port}")
            time.sleep(0.05)

    def kill(self) -> None:
        """SIGKILL: the server is gone at once, as in a crash."""
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self.process = None


@contextmanager
def private_redis() -> Iterator[PrivateRedis]:
    server = PrivateRedis(free_port())
    server.start()
    try:
        yield server
    finally:
        server.kill()


@contextmanager
def redis_server() -> Iterator[str]:
    """A Redis URL: REDIS_URL when set (it must answer), else a private redis-server."""
    given = os.environ.get("REDIS_URL")
    if given:
        parts = urlsplit(given)
        if not redis_answers(parts.hostname or "127.0.0.1", parts.port or 6379):
            raise Unavailable(f"REDIS_URL={given} does not answer PING")
        yield given
        return
    with private_redis() as server:
        yield server.url
