"""The generated `backup` commands against real databases, through the installed console
script: round trips of 10,000 rows on PostgreSQL and SQLite while the service writes, the
failures that must leave the database unchanged on PostgreSQL, S3 against a local
S3-compatible server (moto's), a restore of an older revision over a newer schema, and the
confirmation typed in a terminal.

The generated suite covers the rest on SQLite without servers (test_backup.py there).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import resource
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from conftest import Project
from harness import ROOT, free_port, run, tool
from servers import fresh_database, psql
from test_copier_prompts import Terminal

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


def seed(project: Project, url: str, count: int = ROWS) -> None:
    result = run(
        project.path, "python", HELPER, project.package, "seed", url, str(count), timeout=300
    )
    assert result.returncode == 0, result.stderr


def write_items(project: Project, url: str, count: int) -> None:
    result = run(project.path, "python", HELPER, project.package, "write", url, str(count))
    assert result.returncode == 0, result.stderr


def migrated(project: Project, env: dict[str, str], revision: str = "head") -> None:
    result = run(project.path, project.slug, "migrate", revision, env=env, timeout=120)
    assert result.returncode == 0, result.stderr


def backup(
    project: Project, env: dict[str, str], *args: str, input: str = ""
) -> subprocess.CompletedProcess[str]:
    return run(project.path, project.slug, "backup", *args, env=env, input=input, timeout=600)


def signing_key(project: Project) -> str:
    """BACKUP_SIGNING_KEY of the project's .env, which the commands run here read."""
    for line in (project.path / ".env").read_text().splitlines():
        if line.startswith("BACKUP_SIGNING_KEY="):
            return line.split("=", 1)[1]
    raise AssertionError("copier wrote no BACKUP_SIGNING_KEY into .env")


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
    migrated(project, env)
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
    started = time.monotonic()
    verified = backup(project, env, "verify", name)
    verify_seconds = time.monotonic() - started
    assert verified.returncode == 0, verified.stderr
    total = sum(len(table) for table in before.values())
    record(
        f"backup {kind}",
        f"{total} rows: create {backup_seconds:.1f} s, verify {verify_seconds:.1f} s, "
        f"restore {restore_seconds:.1f} s ({manifest['size'] / 1024 / 1024:.1f} MiB)",
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
        migrated(project, env)
        seed(project, url)
        created = backup(project, env, "create")
        assert created.returncode == 0, created.stderr
        yield env, created.stdout.split()[1]


def rewrite(
    project: Project, target: Path, name: str, data: bytes | None = None, **changes: object
) -> None:
    """Replace a backup's file, or change its manifest, and sign the manifest again with the
    project's key: a backup made that way by someone who holds the key."""
    manifest_path = target / f"{name}.manifest.json"
    manifest = json.loads(manifest_path.read_text())
    if data is not None:
        (target / name).write_bytes(data)
        manifest.update(size=len(data), sha256=hashlib.sha256(data).hexdigest())
    manifest.update(changes)
    manifest_path.write_text(json.dumps(manifest))
    signed = run(
        project.path,
        "python",
        HELPER,
        project.package,
        "sign",
        str(manifest_path),
        signing_key(project),
    )
    assert signed.returncode == 0, signed.stderr


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

    rewrite(project, target, name, sha256="0" * 64)
    assert "is damaged: its size or SHA-256" in refused("restore", name, "--yes")
    assert "is damaged" in refused("verify", name)

    corrupted = bytearray(original)
    middle = len(corrupted) // 2
    corrupted[middle : middle + 4096] = os.urandom(4096)
    rewrite(project, target, name, bytes(corrupted))
    assert f"loading {name} into a scratch database failed" in refused("restore", name, "--yes")

    rewrite(project, target, name, original[: len(original) // 2])
    assert f"loading {name} into a scratch database failed" in refused("restore", name, "--yes")
    # The whole archive was read before anything else: no safety backup of the database.
    assert sorted(path.name for path in target.iterdir()) == [name, f"{name}.manifest.json"]

    rewrite(project, target, name, original, alembic_revision="9999_from_the_future")
    assert "which this version's migrations do not know" in refused("restore", name, "--yes")
    rewrite(project, target, name, original, alembic_revision=revision)

    fake = tmp_path / "other-client"
    fake.mkdir()
    for binary in ("pg_dump", "pg_restore", "psql"):
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


# -- archives whose SQL attacks the server ------------------------------------------------------

# The options of a sequence in the archive's table of contents (plain text there, unlike the
# compressed data): replaced by SQL of the same length, the archive's offsets stay right.
SEQUENCE_OPTIONS = (
    b"    AS integer\n    START WITH 1\n    INCREMENT BY 1\n    NO MINVALUE\n    NO MAXVALUE\n"
    b"    CACHE 1;"
)


def injected(archive: bytes, sql: str) -> bytes:
    """`archive` with `sql` run after the first CREATE SEQUENCE of its table of contents."""
    statement = f";\n{sql}".encode()
    assert len(statement) <= len(SEQUENCE_OPTIONS), sql
    assert SEQUENCE_OPTIONS in archive
    return archive.replace(SEQUENCE_OPTIONS, statement.ljust(len(SEQUENCE_OPTIONS)), 1)


def scratch_leftovers(admin_url: str, database_url: str) -> str:
    """The scratch databases and restore roles of `database_url`'s database still there."""
    label = re.sub(r"[^a-z0-9_]", "_", database_url.rsplit("/", 1)[1].lower())[:30]
    return psql(
        admin_url,
        "SELECT datname FROM pg_database"
        f" WHERE datname ~ '^{label}_(archive|copy)_[0-9a-f]{{8}}$'"
        " UNION ALL SELECT rolname FROM pg_roles"
        f" WHERE rolname ~ '^{label}_restore_[0-9a-f]{{8}}$'",
    )


@pytest.mark.variants(lambda v: v.id == POSTGRES_VARIANT)
def test_archive_sql_runs_only_in_a_scratch_database_without_privileges(
    project: Project,
    postgres_service: tuple[dict[str, str], str],
    postgres_admin: str,
    tmp_path: Path,
) -> None:
    """Archives signed with the right key and consistent with their manifest, whose SQL
    commits early and then fails, writes a file on the server, or says who runs it: every row
    of the live database stays, no file is written, the SQL runs as a temporary role without
    privileges, and the failure line carries the error."""
    env, name = postgres_service
    target = Path(env["BACKUP_TARGET"])
    url = env["DATABASE_URL"]
    original = (target / name).read_bytes()
    before = rows(project, url)
    backups = sorted(path.name for path in target.iterdir())

    def refused(action: str, sql: str) -> str:
        rewrite(project, target, name, injected(original, sql))
        args = (action, name, "--yes") if action == "restore" else (action, name)
        line = one_line_failure(backup(project, env, *args), action)
        assert rows(project, url) == before, f"{action} with {sql!r}: the database changed"
        assert sorted(path.name for path in target.iterdir()) == backups, "a safety backup"
        return line

    for action in ("verify", "restore"):
        line = refused(action, "COMMIT; SELECT 1 FROM no_such_table;")
        assert f"loading {name} into a scratch database failed" in line
        assert 'relation "no_such_table" does not exist' in line, line

    written = Path(f"/tmp/bk-{os.urandom(4).hex()}")
    try:
        for action in ("verify", "restore"):
            line = refused(action, f"RESET ROLE; COPY (SELECT 'x') TO '{written}';")
            assert "permission denied" in line or "must be superuser" in line, line
            assert not written.exists(), "the archive wrote a file on the server"
    finally:
        written.unlink(missing_ok=True)

    line = refused("verify", "DO $$BEGIN RAISE 'run by %', session_user; END$$;")
    role = re.search(r"ERROR:\s+run by (\w+)", line)
    assert role is not None, line
    assert re.fullmatch(r".+_restore_[0-9a-f]{8}", role.group(1)), line
    assert scratch_leftovers(postgres_admin, url) == "", "scratch databases or roles left behind"

    rewrite(project, target, name, original)
    verified = backup(project, env, "verify", name)
    assert verified.returncode == 0, verified.stderr


# -- S3 ------------------------------------------------------------------------------------------

MIB = 1024 * 1024
BUCKET = "backups"
PREFIX = "service/db"
S3_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    """moto's S3-compatible server, a process of its own on a free 127.0.0.1 port."""
    port = free_port()
    server = subprocess.Popen(
        [tool("moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(endpoint, timeout=5)
                break
            except httpx.TransportError:
                assert server.poll() is None, "moto_server exited"
                assert time.monotonic() < deadline, "moto_server did not answer in 60 s"
                time.sleep(0.2)
        yield endpoint
    finally:
        server.terminate()
        server.wait(timeout=30)


def s3_client(endpoint: str) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=S3_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=S3_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    )


def object_names(client: Any) -> list[str]:
    listing = client.list_objects_v2(Bucket=BUCKET, Prefix=f"{PREFIX}/")
    return sorted(item["Key"].removeprefix(f"{PREFIX}/") for item in listing.get("Contents", []))


def listed(project: Project, env: dict[str, str]) -> list[str]:
    result = backup(project, env, "list")
    assert result.returncode == 0, result.stderr
    return [line.split()[0] for line in result.stdout.splitlines()]


@pytest.mark.variants(lambda v: v.id == POSTGRES_VARIANT)
def test_s3_round_trip_multipart_prune_and_failures(
    project: Project,
    postgres_admin: str,
    s3_endpoint: str,
    tmp_path: Path,
    record_property: Record,
) -> None:
    client = s3_client(s3_endpoint)
    client.create_bucket(Bucket=BUCKET)
    no_aws_files = str(tmp_path / "no-aws-config")
    with (
        fresh_database(postgres_admin, "bk-s3") as url,
        fresh_database(postgres_admin, "bk-s3-new") as fresh,
    ):
        env = {
            "DATABASE_URL": url,
            "BACKUP_TARGET": f"s3://{BUCKET}/{PREFIX}",
            "BACKUP_S3_ENDPOINT_URL": s3_endpoint,
            "BACKUP_S3_REGION": "us-east-1",
            "BACKUP_S3_MULTIPART_BYTES": str(5 * MIB),
            "AWS_CONFIG_FILE": no_aws_files,
            "AWS_SHARED_CREDENTIALS_FILE": no_aws_files,
            **S3_CREDENTIALS,
        }
        migrated(project, env)
        seed(project, url, 1000)
        # Rows of random text (pg_dump compresses, random hex only by half): a backup of more
        # than one 5 MiB part.
        psql(
            url,
            "INSERT INTO items (name, description, created_at, updated_at)"
            " SELECT 'large-' || g, (SELECT string_agg(md5(random()::text || g || n), '')"
            " FROM generate_series(1, 62) AS n), now(), now()"
            " FROM generate_series(1, 5500) AS g",
        )
        before = rows(project, url)

        started = time.monotonic()
        first = backup(project, env, "create")
        create_seconds = time.monotonic() - started
        assert first.returncode == 0, first.stderr
        assert f" in s3://{BUCKET}/{PREFIX} (" in first.stdout
        older = first.stdout.split()[1]
        second = backup(project, env, "create")
        assert second.returncode == 0, second.stderr
        newer = second.stdout.split()[1]
        assert listed(project, env) == [newer, older]
        assert object_names(client) == sorted(
            [older, f"{older}.manifest.json", newer, f"{newer}.manifest.json"]
        )

        head = client.head_object(Bucket=BUCKET, Key=f"{PREFIX}/{newer}")
        assert head["ContentLength"] > 5 * MIB
        parts = re.fullmatch(r'"[0-9a-f]{32}-(\d+)"', head["ETag"])
        assert parts is not None and int(parts.group(1)) >= 2, head["ETag"]
        assert head["ServerSideEncryption"] == "AES256"
        manifest_head = client.head_object(Bucket=BUCKET, Key=f"{PREFIX}/{newer}.manifest.json")
        assert manifest_head["ServerSideEncryption"] == "AES256"

        verified = backup(project, env, "verify", newer)
        assert verified.returncode == 0, verified.stderr

        restore_env = {**env, "DATABASE_URL": fresh}
        started = time.monotonic()
        restored = backup(project, restore_env, "restore", newer, "--yes")
        restore_seconds = time.monotonic() - started
        assert restored.returncode == 0, restored.stderr
        assert rows(project, fresh) == before
        safety = restored.stdout.splitlines()[0].rsplit(" ", 1)[1]
        assert safety.endswith("-before-restore.dump")
        assert listed(project, env) == [safety, newer, older]

        # The older object changed behind the service's back, its size and metadata kept.
        key = f"{PREFIX}/{older}"
        stored = client.get_object(Bucket=BUCKET, Key=key)
        data = bytearray(stored["Body"].read())
        data[len(data) // 2] ^= 0xFF
        client.put_object(Bucket=BUCKET, Key=key, Body=bytes(data), Metadata=stored["Metadata"])
        line = one_line_failure(backup(project, env, "verify", older), "verify")
        assert f"{older} is damaged: its size or SHA-256 is not the manifest's" in line

        policy = {
            "BACKUP_KEEP_LAST": "2",
            "BACKUP_KEEP_DAILY": "0",
            "BACKUP_KEEP_WEEKLY": "0",
            "BACKUP_KEEP_MONTHLY": "0",
        }
        everything = object_names(client)
        dry = backup(project, {**env, **policy}, "prune", "--dry-run")
        assert dry.returncode == 0, dry.stderr
        assert dry.stdout.splitlines() == [
            f"Would delete {older}",
            f"Would delete 1 backups, kept 2 in s3://{BUCKET}/{PREFIX}",
        ]
        assert object_names(client) == everything
        pruned = backup(project, {**env, **policy}, "prune")
        assert pruned.returncode == 0, pruned.stderr
        assert listed(project, env) == [safety, newer]
        assert object_names(client) == sorted(
            [safety, f"{safety}.manifest.json", newer, f"{newer}.manifest.json"]
        )

        # A prefix that holds nothing: an error, not an empty list.
        empty = backup(project, {**env, "BACKUP_TARGET": f"s3://{BUCKET}/no/such/prefix"}, "list")
        line = one_line_failure(empty, "list")
        assert line == (
            f"backup list: nothing in s3://{BUCKET}/no/such/prefix; check BACKUP_TARGET or "
            "--from (bucket and prefix)"
        )

        # S3 unreachable: nothing listens on the port.
        work = tmp_path / "tmp"
        work.mkdir()
        down = {**env, "BACKUP_S3_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}"}
        down["TMPDIR"] = str(work)
        for args in (["create"], ["restore", newer, "--yes"]):
            line = one_line_failure(backup(project, down, *args), args[0])
            assert "cannot " in line and "check BACKUP_S3_ENDPOINT_URL" in line, line
        assert rows(project, url) == before
        assert list(work.iterdir()) == []
        assert not (project.path / "backups").exists()
        assert object_names(client) == sorted(
            [safety, f"{safety}.manifest.json", newer, f"{newer}.manifest.json"]
        )
    record_property(
        "backup s3",
        f"{head['ContentLength'] / MIB:.1f} MiB in {parts.group(1)} parts: create "
        f"{create_seconds:.1f} s, restore {restore_seconds:.1f} s",
    )


# -- a restore over a newer schema ------------------------------------------------------------


def failing_clients(directory: Path, pg_dump_script: str) -> Path:
    """A BACKUP_PG_BIN_DIR of the real clients, but a pg_dump that goes wrong when it writes
    the SQL of the checked copy that replaces the live schema (`--format=plain`)."""
    directory.mkdir()
    real = shutil.which("pg_dump")
    assert real is not None
    for name in ("pg_restore", "psql"):
        found = shutil.which(name)
        assert found is not None
        (directory / name).symlink_to(found)
    (directory / "pg_dump").write_text(
        "#!/bin/sh\n"
        'case " $* " in\n'
        f'  *" --format=plain "*) {pg_dump_script.replace("REAL", real)} ;;\n'
        f'  *) exec {real} "$@" ;;\n'
        "esac\n"
    )
    (directory / "pg_dump").chmod(0o755)
    return directory


@pytest.mark.variants(lambda v: v.id == POSTGRES_VARIANT)
def test_restore_of_an_older_revision_over_a_newer_schema(
    project: Project, postgres_admin: str, tmp_path: Path
) -> None:
    """A backup made at the first revision, restored into a database at head with rows in
    tables the backup does not know: the result is the backup's rows, migrated to head."""
    target = tmp_path / "backups"
    with (
        fresh_database(postgres_admin, "bk-old") as old,
        fresh_database(postgres_admin, "bk-head") as live,
    ):
        old_env = {"DATABASE_URL": old, "BACKUP_TARGET": str(target)}
        migrated(project, old_env, "0001")
        write_items(project, old, 25)
        created = backup(project, old_env, "create")
        assert created.returncode == 0, created.stderr
        assert "revision 0001" in created.stdout
        name = created.stdout.split()[1]
        old_items = psql(old, "SELECT name FROM items ORDER BY id")

        env = {"DATABASE_URL": live, "BACKUP_TARGET": str(target)}
        migrated(project, env)
        head = psql(live, "SELECT version_num FROM alembic_version")
        assert head != "0001"
        seed(project, live, 500)
        before = rows(project, live)
        assert all(before.values())

        # pg_dump dies half-way through writing the checked copy's SQL; then psql fails on
        # the last statement: each time after the schema was dropped, in the same
        # transaction, and after a safety backup, which the message names.
        for label, script in (
            ("died", 'REAL "$@" | head -c 3000; exit 1'),
            ("bad-sql", 'REAL "$@" && echo "SELECT no_such_function();"'),
        ):
            bin_dir = failing_clients(tmp_path / label, script)
            result = backup(
                project, {**env, "BACKUP_PG_BIN_DIR": str(bin_dir)}, "restore", name, "--yes"
            )
            line = one_line_failure(result, "restore")
            safety = re.search(r"the database is unchanged \(safety backup: (\S+)\)$", line)
            assert safety is not None, line
            assert (target / f"{safety.group(1)}.manifest.json").is_file()
            assert rows(project, live) == before
            assert psql(live, "SELECT version_num FROM alembic_version") == head

        restored = backup(project, env, "restore", name, "--yes")
        assert restored.returncode == 0, restored.stderr
        after = rows(project, live)
        assert psql(live, "SELECT name FROM items ORDER BY id") == old_items
        assert {table: len(found) for table, found in after.items()} == {
            table: (25 if table == "items" else 0) for table in before
        }
        assert psql(live, "SELECT version_num FROM alembic_version") == head


# -- the confirmation typed in a terminal ---------------------------------------------------------


@pytest.mark.variants(lambda v: v.id == POSTGRES_VARIANT)
def test_restore_asks_for_the_database_name_in_a_terminal(
    project: Project, postgres_admin: str, tmp_path: Path
) -> None:
    with fresh_database(postgres_admin, "bk-tty") as url:
        env = {"DATABASE_URL": url, "BACKUP_TARGET": str(tmp_path / "backups")}
        migrated(project, env)
        write_items(project, url, 10)
        created = backup(project, env, "create")
        assert created.returncode == 0, created.stderr
        name = created.stdout.split()[1]
        write_items(project, url, 5)
        before = rows(project, url)
        database = url.rsplit("/", 1)[1]
        command = [
            "env",
            *(f"{key}={value}" for key, value in env.items()),
            str(project.path / ".venv" / "bin" / project.slug),
            "backup",
            "restore",
            name,
        ]

        terminal = Terminal(command, project.path, timeout=120)
        try:
            terminal.expect(f"Type the database name ({database}) to go on: ", timeout=60)
            terminal.send(f"{database}-not\r")
            terminal.expect("backup restore: not confirmed; the database is unchanged")
            assert terminal.wait() == 1
        finally:
            terminal.close()
        assert rows(project, url) == before
        assert len(list((tmp_path / "backups").iterdir())) == 2, "a safety backup was made"

        terminal = Terminal(command, project.path, timeout=120)
        try:
            terminal.expect(f"Type the database name ({database}) to go on: ", timeout=60)
            terminal.send(f"{database}\r")
            terminal.expect(f"Restored {name}", timeout=60)
            assert terminal.wait() == 0
        finally:
            terminal.close()
        after = rows(project, url)
        assert len(after["items"]) == len(before["items"]) - 5
