"""`backup create|list|verify|restore|prune`: backups of the database, in a directory or S3.

The work is done in operations.py, imported only when a backup command runs, so that the
other commands (`migrate` above all) load none of it.
"""

import argparse
import sys
from collections.abc import Callable
from datetime import UTC, datetime

from ..environment import load_settings
from .errors import BackupError

TARGET_HELP = "a directory or s3://bucket/prefix (default: BACKUP_TARGET)"
UNSIGNED_HELP = (
    "accept a backup without a signature (made before backups were signed); only for one "
    "whose origin you know"
)


def add_backup_commands(commands: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    backup = commands.add_parser(
        "backup", help="create, list, verify, restore or prune backups of the database"
    )
    actions = backup.add_subparsers(dest="backup_command", required=True, metavar="ACTION")
    create = actions.add_parser("create", help="back up the database now")
    create.add_argument("--to", metavar="TARGET", help=TARGET_HELP)
    create.set_defaults(run=run_create)
    listing = actions.add_parser("list", help="the backups, newest first")
    listing.add_argument("--from", dest="source", metavar="TARGET", help=TARGET_HELP)
    listing.set_defaults(run=run_list)
    verify = actions.add_parser(
        "verify", help="check a backup's checksum and restore it into a scratch database"
    )
    verify.add_argument("name", metavar="NAME")
    verify.add_argument("--from", dest="source", metavar="TARGET", help=TARGET_HELP)
    verify.add_argument("--allow-unsigned", action="store_true", help=UNSIGNED_HELP)
    verify.set_defaults(run=run_verify)
    restore = actions.add_parser(
        "restore", help="replace the database with a backup (after a safety backup)"
    )
    restore.add_argument("name", metavar="NAME")
    restore.add_argument("--from", dest="source", metavar="TARGET", help=TARGET_HELP)
    restore.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    restore.add_argument("--allow-unsigned", action="store_true", help=UNSIGNED_HELP)
    restore.set_defaults(run=run_restore)
    prune = actions.add_parser("prune", help="delete the backups the retention settings drop")
    prune.add_argument("--from", dest="source", metavar="TARGET", help=TARGET_HELP)
    prune.add_argument("--dry-run", action="store_true", help="only list what would be deleted")
    prune.set_defaults(run=run_prune)


def _failed(command: str, error: BackupError) -> int:
    print(f"backup {command}: {error}", file=sys.stderr)
    return 1


def format_size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"


def format_age(created_at: datetime, now: datetime) -> str:
    seconds = max(0, int((now - created_at).total_seconds()))
    for unit, length in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= length:
            return f"{seconds // length} {unit} ago"
    return f"{seconds} s ago"


def run_create(args: argparse.Namespace) -> int:
    from .operations import create_backup
    from .store import open_store

    settings = load_settings()
    try:
        store = open_store(settings, args.to)
        manifest = create_backup(settings, store)
    except BackupError as error:
        return _failed("create", error)
    rows = sum(count for table, count in manifest.row_counts.items() if table != "alembic_version")
    encrypted = ", encrypted" if manifest.encrypted else ""
    print(
        f"Created {manifest.name} in {store.description} ({format_size(manifest.size)}, "
        f"revision {manifest.alembic_revision}, {rows} rows{encrypted})"
    )
    return 0


def run_list(args: argparse.Namespace) -> int:
    from .manifest import list_backups
    from .store import open_store

    settings = load_settings()
    key = settings.backup_signing_key
    try:
        store = open_store(settings, args.source)
        listing = list_backups(store, key.get_secret_value() if key else None)
    except BackupError as error:
        return _failed("list", error)
    if not listing.backups and not listing.damaged:
        print(f"No backups in {store.description}")
        return 0
    now = datetime.now(UTC)
    for manifest in listing.backups:
        encrypted = "  encrypted" if manifest.encrypted else ""
        unsigned = "  unsigned" if manifest.signature is None else ""
        print(
            f"{manifest.name}  {format_size(manifest.size):>10}  "
            f"{format_age(manifest.created_at, now):>12}  "
            f"revision {manifest.alembic_revision}{encrypted}{unsigned}"
        )
    for _, reason in listing.damaged:
        print(reason)
    return 0


def run_verify(args: argparse.Namespace) -> int:
    from .operations import verify_backup
    from .store import open_store

    settings = load_settings()
    try:
        store = open_store(settings, args.source)
        manifest = verify_backup(settings, store, args.name, allow_unsigned=args.allow_unsigned)
    except BackupError as error:
        return _failed("verify", error)
    print(
        f"{manifest.name} is usable: its signature, checksum, revision "
        f"{manifest.alembic_revision} and the rows of its {len(manifest.row_counts)} tables "
        "match its manifest, and it migrates to this version's schema"
    )
    return 0


def _confirmation(assume_yes: bool) -> Callable[[str], bool]:
    def confirm(database: str) -> bool:
        if assume_yes:
            return True
        if not sys.stdin.isatty():
            raise BackupError(
                "refusing to replace the database without confirmation; pass --yes or run it "
                "in a terminal; the database is unchanged"
            )
        print(f"This replaces the database {database} with the backup.")
        answer = input(f"Type the database name ({database}) to go on: ")
        return answer.strip() == database

    return confirm


def run_restore(args: argparse.Namespace) -> int:
    from .operations import restore_backup
    from .store import open_store

    settings = load_settings()
    try:
        store = open_store(settings, args.source)
        manifest, safety = restore_backup(
            settings,
            store,
            args.name,
            _confirmation(args.yes),
            allow_unsigned=args.allow_unsigned,
        )
    except BackupError as error:
        return _failed("restore", error)
    if safety is None:
        print("No database there yet: no safety backup needed")
    else:
        print(f"Safety backup of the database before the restore: {safety.name}")
    print(
        f"Restored {manifest.name} (revision {manifest.alembic_revision}) and migrated the "
        "database to the code's revision"
    )
    return 0


def run_prune(args: argparse.Namespace) -> int:
    from .operations import prune_backups
    from .store import open_store

    settings = load_settings()
    try:
        store = open_store(settings, args.source)
        listing, dropped = prune_backups(settings, store, dry_run=args.dry_run)
    except BackupError as error:
        return _failed("prune", error)
    verb = "Would delete" if args.dry_run else "Deleted"
    for manifest in dropped:
        print(f"{verb} {manifest.name}")
    for _, reason in listing.damaged:
        print(f"Left alone: {reason}")
    kept = len(listing.backups) + len(listing.damaged) - len(dropped)
    print(f"{verb} {len(dropped)} backups, kept {kept} in {store.description}")
    return 0
