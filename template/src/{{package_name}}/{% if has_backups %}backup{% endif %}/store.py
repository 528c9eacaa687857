"""Where backups are kept: a directory, or an S3 bucket (s3.py, loaded only for S3)."""

import hashlib
import os
import shutil
from pathlib import Path
from typing import Protocol

from .errors import BackupError
from .settings import BackupSettings

CHUNK = 1024 * 1024


class Store(Protocol):
    description: str

    def upload(self, source: Path, name: str) -> None:
        """Store `source` as `name`: complete and verified, or not at all."""

    def download(self, name: str, destination: Path) -> None: ...

    def names(self) -> list[str]: ...

    def read_bytes(self, name: str) -> bytes: ...

    def write_bytes(self, name: str, data: bytes) -> None: ...

    def delete(self, name: str) -> None: ...


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _write_error(error: OSError, where: str) -> BackupError:
    return BackupError(f"cannot write to {where} ({error.strerror or error}); free space or fix it")


class DirectoryStore:
    """Backups in a local directory. A file appears under its name only once complete
    (written to a hidden temporary name, synced, checked, then renamed)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.description = str(directory.absolute())

    def _path(self, name: str) -> Path:
        if "/" in name or name.startswith(".") or not name:
            raise BackupError(f"{name!r} is not a backup name; `backup list` shows the names")
        return self.directory / name

    def _prepare(self) -> None:
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise _write_error(error, self.description) from None

    def upload(self, source: Path, name: str) -> None:
        self._prepare()
        target = self._path(name)
        partial = self.directory / f".{name}.partial"
        try:
            with source.open("rb") as reader, partial.open("wb") as writer:
                shutil.copyfileobj(reader, writer, CHUNK)
                writer.flush()
                os.fsync(writer.fileno())
            if partial.stat().st_size != source.stat().st_size or sha256_of(partial) != sha256_of(
                source
            ):
                raise BackupError(f"the copy of {name} in {self.description} differs; try again")
            partial.replace(target)
        except OSError as error:
            raise _write_error(error, self.description) from None
        finally:
            partial.unlink(missing_ok=True)

    def download(self, name: str, destination: Path) -> None:
        try:
            shutil.copyfile(self._path(name), destination)
        except FileNotFoundError:
            raise BackupError(f"no backup {name} in {self.description}") from None

    def names(self) -> list[str]:
        if not self.directory.is_dir():
            return []
        return sorted(
            path.name
            for path in self.directory.iterdir()
            if path.is_file() and not path.name.startswith(".")
        )

    def read_bytes(self, name: str) -> bytes:
        return self._path(name).read_bytes()

    def write_bytes(self, name: str, data: bytes) -> None:
        self._prepare()
        partial = self.directory / f".{name}.partial"
        try:
            with partial.open("wb") as writer:
                writer.write(data)
                writer.flush()
                os.fsync(writer.fileno())
            partial.replace(self._path(name))
        except OSError as error:
            raise _write_error(error, self.description) from None
        finally:
            partial.unlink(missing_ok=True)

    def delete(self, name: str) -> None:
        self._path(name).unlink(missing_ok=True)


def open_store(settings: BackupSettings, target: str | None = None) -> Store:
    """The store of `target` (default: BACKUP_TARGET). boto3 is imported only for S3."""
    where = target or settings.backup_target
    if where.startswith("s3://"):
        from .s3 import S3Store

        return S3Store(settings, where)
    return DirectoryStore(Path(where))
