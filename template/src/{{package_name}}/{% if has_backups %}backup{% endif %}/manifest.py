"""The manifest written beside each backup file: what it holds and how to check it."""

import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from .errors import BackupError
from .store import Store

MANIFEST_SUFFIX = ".manifest.json"


@dataclass(frozen=True)
class Manifest:
    name: str
    service_version: str
    alembic_revision: str | None
    database: str
    created_at: datetime
    size: int
    sha256: str
    encrypted: bool
    row_counts: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> bytes:
        data: dict[str, Any] = asdict(self)
        data["created_at"] = self.created_at.isoformat()
        return (json.dumps(data, indent=2, sort_keys=True) + "\n").encode()

    @classmethod
    def from_json(cls, text: bytes) -> "Manifest":
        data = json.loads(text)
        created_at = datetime.fromisoformat(data["created_at"])
        return cls(
            name=str(data["name"]),
            service_version=str(data["service_version"]),
            alembic_revision=data["alembic_revision"],
            database=str(data["database"]),
            created_at=created_at.astimezone(UTC),
            size=int(data["size"]),
            sha256=str(data["sha256"]),
            encrypted=bool(data["encrypted"]),
            row_counts={str(k): int(v) for k, v in data["row_counts"].items()},
        )


def manifest_name(name: str) -> str:
    return name + MANIFEST_SUFFIX


def backup_name(prefix: str, created_at: datetime, suffix: str, taken: set[str]) -> str:
    """`<prefix>-20261130T231500Z<suffix>`: names sort by time; a name already taken gets -2,
    -3... (two backups in one second)."""
    stamp = created_at.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    name = f"{prefix}-{stamp}{suffix}"
    number = 1
    while name in taken or manifest_name(name) in taken:
        number += 1
        name = f"{prefix}-{stamp}-{number}{suffix}"
    return name


def read_manifest(store: Store, name: str) -> Manifest:
    names = set(store.names())
    if name not in names or manifest_name(name) not in names:
        raise BackupError(
            f"no complete backup {name} in {store.description}; `backup list` shows the names"
        )
    try:
        return Manifest.from_json(store.read_bytes(manifest_name(name)))
    except (ValueError, KeyError, TypeError) as error:
        raise BackupError(
            f"the manifest of {name} in {store.description} is unreadable ({error})"
        ) from None


def list_backups(store: Store) -> list[Manifest]:
    """Complete backups only (the manifest is written last), newest first. A manifest that
    cannot be read counts as no backup."""
    names = set(store.names())
    manifests = []
    for name in sorted(names):
        if not name.endswith(MANIFEST_SUFFIX):
            continue
        backup = name.removesuffix(MANIFEST_SUFFIX)
        if backup not in names:
            continue
        try:
            manifests.append(Manifest.from_json(store.read_bytes(name)))
        except (ValueError, KeyError, TypeError):
            continue
    return sorted(manifests, key=lambda manifest: manifest.created_at, reverse=True)


@dataclass(frozen=True)
class Snapshot:
    """What a database or a backup holds: its Alembic revision and the rows of each table."""

    alembic_revision: str | None
    row_counts: dict[str, int]
