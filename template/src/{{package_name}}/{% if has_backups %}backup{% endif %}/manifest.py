"""The manifest written beside each backup file: what it holds, how to check it, and the
HMAC-SHA256 that authenticates it with BACKUP_SIGNING_KEY.

A manifest is read back from storage an attacker may write to, so it is read only up to
MAX_MANIFEST_BYTES, parsed by a typed model with bounded values, and must carry the name of
the file it sits beside. The signature covers every other field, the archive's SHA-256
among them: a valid signature vouches for every byte of the archive.
"""

import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, field_validator

from .errors import BackupError
from .store import Store

MANIFEST_SUFFIX = ".manifest.json"
# A manifest is a few KiB; anything larger is refused before it is parsed.
MAX_MANIFEST_BYTES = 1024 * 1024
# Bounds of what a manifest may say: 1 PiB, 2**63 rows, and dates a backup can have.
MAX_SIZE = 2**50
MAX_ROWS = 2**63 - 1
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
LATEST = datetime(3000, 1, 1, tzinfo=UTC)
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$"
# Prefixed to what is signed, so that a signature of this format can mean nothing else.
SIGNATURE_CONTEXT = b"backup-manifest-v1\n"

Identifier = Annotated[str, Field(min_length=1, max_length=200)]


class Manifest(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    name: str = Field(pattern=NAME_PATTERN)
    service_version: str = Field(max_length=100)
    alembic_revision: str | None = Field(default=None, max_length=200)
    database: str = Field(max_length=20)
    created_at: AwareDatetime
    size: int = Field(ge=0, le=MAX_SIZE)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    encrypted: bool
    row_counts: dict[Identifier, Annotated[int, Field(ge=0, le=MAX_ROWS)]] = Field(
        default_factory=dict, max_length=10_000
    )
    signature: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")

    @field_validator("created_at")
    @classmethod
    def _in_range(cls, value: datetime) -> datetime:
        if not EARLIEST <= value <= LATEST:
            raise ValueError("not a date a backup can have")
        return value.astimezone(UTC)

    def signed_content(self) -> bytes:
        """Every field but the signature, in one canonical form."""
        data = self.model_dump(mode="json", exclude={"signature"})
        return SIGNATURE_CONTEXT + json.dumps(data, sort_keys=True, separators=(",", ":")).encode()

    def signed(self, key: str) -> "Manifest":
        mac = hmac.new(key.encode(), self.signed_content(), hashlib.sha256).hexdigest()
        return self.model_copy(update={"signature": mac})

    def signature_matches(self, key: str) -> bool:
        if self.signature is None:
            return False
        expected = hmac.new(key.encode(), self.signed_content(), hashlib.sha256).hexdigest()
        return hmac.compare_digest(expected, self.signature)

    def to_json(self) -> bytes:
        return (self.model_dump_json(indent=2) + "\n").encode()

    @classmethod
    def from_json(cls, text: bytes) -> "Manifest":
        return cls.model_validate_json(text)


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


def _problem(error: ValidationError) -> str:
    first = error.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "the manifest"
    return f"{where}: {first['msg']}"


def parse_manifest(store: Store, name: str, signing_key: str | None) -> Manifest:
    """The manifest of backup `name`, or a BackupError saying in one line why it is damaged:
    too large, not the model, another backup's name, or (with a key) a wrong signature."""
    try:
        data = store.read_bytes(manifest_name(name), MAX_MANIFEST_BYTES)
    except BackupError as error:
        raise BackupError(f"{name} is damaged: {error}") from None
    try:
        manifest = Manifest.from_json(data)
    except ValidationError as error:
        raise BackupError(
            f"{name} is damaged: its manifest is unreadable ({_problem(error)})"
        ) from None
    except (ValueError, RecursionError):
        raise BackupError(f"{name} is damaged: its manifest is not JSON") from None
    if manifest.name != name:
        raise BackupError(
            f"{name} is damaged: its manifest is that of {manifest.name}, another backup"
        )
    forged = signing_key and not manifest.signature_matches(signing_key)
    if manifest.signature is not None and forged:
        raise BackupError(
            f"{name} is damaged: its signature does not match BACKUP_SIGNING_KEY (changed "
            "or made with another key); use another backup"
        )
    return manifest


def read_manifest(store: Store, name: str) -> Manifest:
    """The manifest of `name` as it is (signature unchecked): authenticate() checks it."""
    names = set(store.names())
    if name not in names or manifest_name(name) not in names:
        raise BackupError(
            f"no complete backup {name} in {store.description}; `backup list` shows the names"
        )
    return parse_manifest(store, name, None)


def authenticate(manifest: Manifest, signing_key: str | None, *, allow_unsigned: bool) -> None:
    """Refuse a manifest that BACKUP_SIGNING_KEY does not authenticate, before any byte of
    its backup is used. An unsigned one (made before backups were signed) only with
    `allow_unsigned`."""
    if manifest.signature is None:
        if not allow_unsigned:
            raise BackupError(
                f"{manifest.name} is not signed (made before backups were signed, or forged); "
                "pass --allow-unsigned if you know where it comes from"
            )
        return
    if not signing_key:
        raise BackupError(
            f"{manifest.name} is signed: set BACKUP_SIGNING_KEY to the key it was made with"
        )
    if not manifest.signature_matches(signing_key):
        raise BackupError(
            f"{manifest.name} is damaged: its signature does not match BACKUP_SIGNING_KEY "
            "(changed or made with another key); use another backup"
        )


@dataclass(frozen=True)
class Listing:
    """The complete backups of a store, newest first, and those whose manifest is damaged
    (name and reason), so that one bad manifest hides no other backup."""

    backups: list[Manifest]
    damaged: list[tuple[str, str]]


def list_backups(store: Store, signing_key: str | None = None) -> Listing:
    """Complete backups only (the manifest is written last). With `signing_key`, a manifest
    whose signature does not match it counts as damaged."""
    names = set(store.names())
    backups = []
    damaged = []
    for name in sorted(names):
        if not name.endswith(MANIFEST_SUFFIX):
            continue
        backup = name.removesuffix(MANIFEST_SUFFIX)
        if backup not in names:
            continue
        try:
            backups.append(parse_manifest(store, backup, signing_key))
        except BackupError as error:
            damaged.append((backup, str(error)))
    backups.sort(key=lambda manifest: manifest.created_at, reverse=True)
    return Listing(backups=backups, damaged=damaged)


@dataclass(frozen=True)
class Snapshot:
    """What a database or a backup holds: its Alembic revision and the rows of each table."""

    alembic_revision: str | None
    row_counts: dict[str, int]
