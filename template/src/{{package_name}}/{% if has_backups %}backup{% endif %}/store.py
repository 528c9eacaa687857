"""Where backups are kept: a directory, or an S3 bucket (s3.py, loaded only for S3)."""

import errno
import hashlib
import os
import shutil
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO, Protocol

from .errors import BackupError
from .settings import BackupSettings

CHUNK = 1024 * 1024


class Store(Protocol):
    description: str

    def upload(self, source: Path, name: str) -> None:
        """Store `source` as `name`: complete and verified, or not at all."""

    def download(self, name: str, destination: Path) -> None: ...

    def names(self, *, missing_ok: bool = False) -> list[str]:
        """The names in the target; a target that does not exist is an error unless
        `missing_ok`."""

    def read_bytes(self, name: str, limit: int) -> bytes:
        """The content of `name`, refused when larger than `limit` bytes."""

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


def create_private(path: Path) -> BinaryIO:
    """A new file readable only by its owner: never an existing file, nor through a link."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
    return os.fdopen(os.open(path, flags, 0o600), "wb")


class DirectoryStore:
    """Backups in a local directory, created readable only by its owner. A file appears under
    its name only once complete: written to a new temporary file of a random name (never one
    that exists, never through a link), synced, checked, then renamed. A file of the target
    that is a symbolic link is never followed."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.description = str(directory.absolute())

    def _path(self, name: str) -> Path:
        if "/" in name or name.startswith(".") or not name:
            raise BackupError(f"{name!r} is not a backup name; `backup list` shows the names")
        return self.directory / name

    def _prepare(self) -> None:
        try:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as error:
            raise _write_error(error, self.description) from None

    def _open(self, name: str) -> BinaryIO:
        """`name` for reading: a regular file of the target, not a link to one elsewhere."""
        path = self._path(name)
        try:
            file = os.fdopen(os.open(path, os.O_RDONLY | os.O_NOFOLLOW), "rb")
        except FileNotFoundError:
            raise BackupError(f"no backup file {name} in {self.description}") from None
        except OSError as error:
            if error.errno == errno.ELOOP:
                raise BackupError(
                    f"{name} in {self.description} is a symbolic link; refusing to follow it"
                ) from None
            raise BackupError(f"cannot read {name} ({error.strerror or error})") from None
        if not stat.S_ISREG(os.fstat(file.fileno()).st_mode):
            file.close()
            raise BackupError(f"{name} in {self.description} is not a regular file")
        return file

    def _write(self, name: str, fill: Callable[[BinaryIO], object]) -> Path:
        """Write `name` into a new private temporary file of the target, removed again if
        anything fails; returns its path (renamed by the caller)."""
        self._prepare()
        self._path(name)
        descriptor, temporary = tempfile.mkstemp(
            prefix=f".{name}.", suffix=".partial", dir=self.directory
        )
        try:
            with os.fdopen(descriptor, "wb") as writer:
                fill(writer)
                writer.flush()
                os.fsync(writer.fileno())
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        return Path(temporary)

    def upload(self, source: Path, name: str) -> None:
        def copy(writer: BinaryIO) -> None:
            with source.open("rb") as reader:
                shutil.copyfileobj(reader, writer, CHUNK)

        try:
            partial = self._write(name, copy)
        except OSError as error:
            raise _write_error(error, self.description) from None
        try:
            if partial.stat().st_size != source.stat().st_size or sha256_of(partial) != sha256_of(
                source
            ):
                raise BackupError(f"the copy of {name} in {self.description} differs; try again")
            partial.replace(self._path(name))
        except OSError as error:
            raise _write_error(error, self.description) from None
        finally:
            partial.unlink(missing_ok=True)

    def download(self, name: str, destination: Path) -> None:
        with self._open(name) as reader, create_private(destination) as writer:
            shutil.copyfileobj(reader, writer, CHUNK)

    def names(self, *, missing_ok: bool = False) -> list[str]:
        if not self.directory.is_dir():
            if missing_ok:
                return []
            raise BackupError(
                f"no backup directory {self.description}; check BACKUP_TARGET or --from"
            )
        # Links are listed too (not followed), so that using one is refused by name.
        return sorted(
            entry.name
            for entry in os.scandir(self.directory)
            if not entry.name.startswith(".") and not entry.is_dir(follow_symlinks=False)
        )

    def read_bytes(self, name: str, limit: int) -> bytes:
        with self._open(name) as reader:
            data = reader.read(limit + 1)
        if len(data) > limit:
            raise BackupError(f"{name} is larger than {limit // 1024} KiB; refusing to read it")
        return data

    def write_bytes(self, name: str, data: bytes) -> None:
        try:
            partial = self._write(name, lambda writer: writer.write(data))
        except OSError as error:
            raise _write_error(error, self.description) from None
        try:
            partial.replace(self._path(name))
        except OSError as error:
            partial.unlink(missing_ok=True)
            raise _write_error(error, self.description) from None

    def delete(self, name: str) -> None:
        self._path(name).unlink(missing_ok=True)


def open_store(settings: BackupSettings, target: str | None = None) -> Store:
    """The store of `target` (default: BACKUP_TARGET). boto3, the optional extra `s3`, is
    imported only for S3."""
    where = target or settings.backup_target
    if where.startswith("s3://"):
        try:
            from .s3 import S3Store
        except ModuleNotFoundError as error:
            if error.name not in {"boto3", "botocore"}:
                raise
            raise BackupError(
                f"{where} is an S3 target, which needs boto3: install the s3 extra "
                "(uv sync --extra s3; the image: docker build --build-arg EXTRAS=s3)"
            ) from None
        return S3Store(settings, where)
    return DirectoryStore(Path(where))
