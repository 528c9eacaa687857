"""The generated `backup` commands against real databases, through the installed console
script: round trips of 10,000 rows on PostgreSQL and SQLite while the service writes, and the
failures that must leave the database unchanged on PostgreSQL.

The generated suite covers the rest on SQLite without servers (test_backup.py there).
"""

from __future__ import annotations

import hashlib
import json
import os
import resource
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import Project
from harness import ROOT, run
from servers import fresh_database

ROWS = 10_000
HELPER = str(ROOT / "tests" / "backup_rows.py")
# One variant per database, each with every table a variant can have or most of them.
POSTGRES_VARIANT = "jwt-apikey-pg-nolimit"
SQLITE_VARIANT = "default"

Record = Callable[[str, object], None]


def rows(project: Project, url: str) -> dict[str, list[list[str]]]:
    result = run(project.path, "python", HELPER, project.package, "rows", url, timeout=300)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def seed(project: Project, url: str) -> None:
    result = run(
        project.path, "python", HELPER, project.package, "seed", url, str(ROWS), timeout=300
    )
    assert result.returncode == 0, result.stderr


def backup(
    project: Project, env: dict[str, str], *args: str, input: str = ""
) -> subprocess.CompletedProcess[str]:
    return run(project.path, project.slug, "backup", *args, env=env, input=input, timeout=600)


def one_line_failure(result: subprocess.CompletedProcess[str], command: str) -> str:
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"backup {command}: ")
    return lines[0]


def round_trip(
    project: Project, source: str, fresh: str, target: Path, kind: str, record: Record
) -> None:
    """Seed, back up while a writer inserts, restore into a fresh database, compare."""
    env = {"DATABASE_URL": source, "BACKUP_TARGET": str(target)}
    result = run(project.path, project.slug, "migrate", env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    seed(project, source)
    before = rows(project, source)
    assert sum(len(table) for table in before.values()) >= ROWS
    assert all(before.values()), {name: len(table) for name, table in before.items()}

    writer = subprocess.Popen(
        [str(project.path / ".venv" / "bin" / "python"), HELPER, project.package, "write", source],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert writer.stdout is not None
        writer.stdout.readline()  # the writer has committed a first row
        started = time.monotonic()
        created = backup(project, env, "create")
        backup_seconds = time.monotonic() - started
        writer.stdout.readline()  # and it still commits after the backup
    finally:
        writer.terminate()
        writer.wait(timeout=30)
    assert created.returncode == 0, created.stderr
    name = created.stdout.split()[1]

    restore_env = {"DATABASE_URL": fresh, "BACKUP_TARGET": str(target)}
    started = time.monotonic()
    restored = backup(project, restore_env, "restore", name, "--yes")
    restore_seconds = time.monotonic() - started
    assert restored.returncode == 0, restored.stderr
    after = rows(project, fresh)
    live = rows(project, source)
    for table, table_rows in before.items():
        kept = {tuple(row) for row in after[table]}
        lost = [row for row in table_rows if tuple(row) not in kept]
        assert lost == [], f"{table}: {len(lost)} rows lost or changed"
        assert kept <= {tuple(row) for row in live[table]}, f"{table}: rows never written"
    assert len(after["items"]) > len(before["items"]), "no row written during the backup"
    manifest = json.loads((target / f"{name}.manifest.json").read_text())
    assert manifest["row_counts"]["items"] == len(after["items"])
    verified = backup(project, env, "verify", name)
    assert verified.returncode == 0, verified.stderr
    total = sum(len(table) for table in before.values())
    record(
        f"backup {kind}",
        f"{total} rows: create {backup_seconds:.1f} s, restore {restore_seconds:.1f} s "
        f"({manifest['size'] / 1024 / 1024:.1f} MiB)",
    )


@pytest.mark.variants(lambda v: v.id == POSTGRES_VARIANT)
def test_round_trip_on_postgresql(
    project: Project, postgres_admin: str, tmp_path: Path, record_property: Record
) -> None:
    with (
        fresh_database(postgres_admin, "bk-src") as source,
        fresh_database(postgres_admin, "bk-new") as fresh,
    ):
        round_trip(project, source, fresh, tmp_path / "backups", "postgresql", record_property)


@pytest.mark.variants(lambda v: v.id == SQLITE_VARIANT)
def test_round_trip_on_sqlite(project: Project, tmp_path: Path, record_property: Record) -> None:
    source = f"sqlite:///{tmp_path / 'live.db'}"
    fresh = f"sqlite:///{tmp_path / 'fresh' / 'new.db'}"
    round_trip(project, source, fresh, tmp_path / "backups", "sqlite", record_property)


@pytest.fixture
def postgres_service(
    project: Project, postgres_admin: str, tmp_path: Path
) -> Iterator[tuple[dict[str, str], str]]:
    """A migrated, seeded PostgreSQL database with one good backup."""
    with fresh_database(postgres_admin, "bk-fail") as url:
        env = {"DATABASE_URL": url, "BACKUP_TARGET": str(tmp_path / "backups")}
        result = run(project.path, project.slug, "migrate", env=env, timeout=120)
        assert result.returncode == 0, result.stderr
        seed(project, url)
        created = backup(project, env, "create")
        assert created.returncode == 0, created.stderr
        yield env, created.stdout.split()[1]


def rewrite(target: Path, name: str, data: bytes | None = None, **changes: object) -> None:
    manifest_path = target / f"{name}.manifest.json"
    manifest = json.loads(manifest_path.read_text())
    if data is not None:
        (target / name).write_bytes(data)
        manifest.update(size=len(data), sha256=hashlib.sha256(data).hexdigest())
    manifest.update(changes)
    manifest_path.write_text(json.dumps(manifest))


@pytest.mark.variants(lambda v: v.id == POSTGRES_VARIANT)
def test_failures_leave_postgresql_unchanged(
    project: Project, postgres_service: tuple[dict[str, str], str], tmp_path: Path
) -> None:
    env, name = postgres_service
    target = Path(env["BACKUP_TARGET"])
    url = env["DATABASE_URL"]
    original = (target / name).read_bytes()
    revision = json.loads((target / f"{name}.manifest.json").read_text())["alembic_revision"]
    # A row the backup lacks: any restore would remove it.
    added = run(project.path, "python", HELPER, project.package, "write", url, "1")
    assert added.returncode == 0, added.stderr
    before = rows(project, url)

    def refused(*args: str, extra: dict[str, str] | None = None) -> str:
        result = backup(project, {**env, **(extra or {})}, *args)
        line = one_line_failure(result, args[0])
        assert rows(project, url) == before, f"{args}: the database changed"
        return line

    assert "without confirmation" in refused("restore", name)

    rewrite(target, name, sha256="0" * 64)
    assert "is damaged: its size or SHA-256" in refused("restore", name, "--yes")
    assert "is damaged" in refused("verify", name)

    corrupted = bytearray(original)
    middle = len(corrupted) // 2
    corrupted[middle : middle + 4096] = os.urandom(4096)
    rewrite(target, name, bytes(corrupted))
    assert "pg_restore" in refused("restore", name, "--yes")

    rewrite(target, name, original[: len(original) // 2])
    assert "pg_restore" in refused("restore", name, "--yes")

    rewrite(target, name, original, alembic_revision="9999_from_the_future")
    assert "which this version's migrations do not know" in refused("restore", name, "--yes")
    rewrite(target, name, original, alembic_revision=revision)

    fake = tmp_path / "other-client"
    fake.mkdir()
    for binary in ("pg_dump", "pg_restore"):
        (fake / binary).write_text(f"#!/bin/sh\necho '{binary} (PostgreSQL) 9.6.24'\n")
        (fake / binary).chmod(0o755)
    line = refused("create", extra={"BACKUP_PG_BIN_DIR": str(fake)})
    assert "is PostgreSQL 9 but the server is PostgreSQL" in line
    line = refused("restore", name, "--yes", extra={"BACKUP_PG_BIN_DIR": str(fake)})
    assert "is PostgreSQL 9 but the server is PostgreSQL" in line

    # A full disk: every file the command (and pg_dump) writes is limited to 64 KiB.
    limit = 64 * 1024
    complete = sorted(target.iterdir())
    full = subprocess.run(
        [str(project.path / ".venv" / "bin" / project.slug), "backup", "create"],
        cwd=project.path,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=300,
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit)),
    )
    one_line_failure(full, "create")
    assert rows(project, url) == before
    assert sorted(target.iterdir()) == complete, "nothing may be left in the target"
