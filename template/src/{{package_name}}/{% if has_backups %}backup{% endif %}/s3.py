"""Backups in an S3 bucket (AWS or any S3-compatible endpoint), through boto3.

Large files go up in parts (BACKUP_S3_MULTIPART_BYTES); each upload is checked afterwards:
the object's size, and the SHA-256 stored in its metadata, must be the file's, and so must
the CRC32 the server computed over the whole object when it reports one.
"""

import base64
import zlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from .errors import BackupError
from .settings import BackupSettings
from .store import sha256_of

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

CHECKSUM_KEY = "sha256"
CHUNK = 1024 * 1024


def crc32_of(path: Path) -> str:
    """The CRC32 of a file as S3 reports it: four big-endian bytes, base64."""
    value = 0
    with path.open("rb") as file:
        while chunk := file.read(CHUNK):
            value = zlib.crc32(chunk, value)
    return base64.b64encode(value.to_bytes(4, "big")).decode()


class S3Store:
    def __init__(self, settings: BackupSettings, target: str) -> None:
        bucket, _, prefix = target.removeprefix("s3://").partition("/")
        if not bucket:
            raise BackupError(f"{target} names no bucket; use s3://bucket/prefix")
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.description = f"s3://{bucket}/{self.prefix}" if self.prefix else f"s3://{bucket}"
        self.settings = settings
        self.client: S3Client = boto3.client(
            "s3",
            endpoint_url=settings.backup_s3_endpoint_url,
            region_name=settings.backup_s3_region,
            config=Config(
                connect_timeout=10,
                read_timeout=60,
                retries={"max_attempts": 3, "mode": "standard"},
            ),
        )
        self.transfer = TransferConfig(
            multipart_threshold=settings.backup_s3_multipart_bytes,
            multipart_chunksize=settings.backup_s3_multipart_bytes,
        )

    def _key(self, name: str) -> str:
        return f"{self.prefix}/{name}" if self.prefix else name

    def _failure(self, error: Exception, action: str) -> BackupError:
        if isinstance(error, ClientError):
            reason = error.response.get("Error", {}).get("Message") or str(error)
        else:
            reason = str(error)
        endpoint = self.settings.backup_s3_endpoint_url or "AWS"
        return BackupError(
            f"cannot {action} {self.description} at {endpoint} ({reason}); check "
            "BACKUP_S3_ENDPOINT_URL, the bucket and the AWS credentials"
        )

    def _encryption(self) -> dict[str, Any]:
        mode = self.settings.backup_s3_server_side_encryption
        if mode == "none":
            return {}
        extra: dict[str, Any] = {"ServerSideEncryption": mode}
        if mode == "aws:kms" and self.settings.backup_s3_kms_key_id:
            extra["SSEKMSKeyId"] = self.settings.backup_s3_kms_key_id
        return extra

    def upload(self, source: Path, name: str) -> None:
        checksum = sha256_of(source)
        size = source.stat().st_size
        key = self._key(name)
        extra = {"Metadata": {CHECKSUM_KEY: checksum}, **self._encryption()}
        try:
            self.client.upload_file(
                str(source), self.bucket, key, ExtraArgs=extra, Config=self.transfer
            )
            head = self.client.head_object(Bucket=self.bucket, Key=key, ChecksumMode="ENABLED")
        except (BotoCoreError, ClientError) as error:
            raise self._failure(error, "upload to") from None
        # The server's CRC32 when it is that of the whole object: said so (FULL_OBJECT), or an
        # object sent in one part (a multipart one's ETag ends in -N).
        crc32 = head.get("ChecksumCRC32")
        kind = head.get("ChecksumType")
        whole = crc32 is not None and (
            kind == "FULL_OBJECT" or (kind is None and "-" not in head.get("ETag", "-"))
        )
        if (
            head["ContentLength"] != size
            or head["Metadata"].get(CHECKSUM_KEY) != checksum
            or (whole and crc32 != crc32_of(source))
        ):
            self.delete(name)
            raise BackupError(
                f"the upload of {name} to {self.description} came out different; try again"
            )

    def download(self, name: str, destination: Path) -> None:
        try:
            self.client.download_file(self.bucket, self._key(name), str(destination))
        except (BotoCoreError, ClientError) as error:
            raise self._failure(error, "download from") from None

    def names(self, *, missing_ok: bool = False) -> list[str]:
        start = f"{self.prefix}/" if self.prefix else ""
        found = []
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=start
            )
            for page in pages:
                for item in page.get("Contents", []):
                    rest = item["Key"].removeprefix(start)
                    if rest and "/" not in rest:
                        found.append(rest)
        except (BotoCoreError, ClientError) as error:
            raise self._failure(error, "list") from None
        if not found and not missing_ok:
            raise BackupError(
                f"nothing in {self.description}; check BACKUP_TARGET or --from (bucket and prefix)"
            )
        return sorted(found)

    def read_bytes(self, name: str, limit: int) -> bytes:
        try:
            # One byte more than allowed, whatever the object's size: a larger one is refused
            # without being read.
            response = self.client.get_object(
                Bucket=self.bucket, Key=self._key(name), Range=f"bytes=0-{limit}"
            )
            data = response["Body"].read(limit + 1)
        except (BotoCoreError, ClientError) as error:
            raise self._failure(error, "read from") from None
        if len(data) > limit:
            raise BackupError(f"{name} is larger than {limit // 1024} KiB; refusing to read it")
        return data

    def write_bytes(self, name: str, data: bytes) -> None:
        try:
            self.client.put_object(
                Bucket=self.bucket, Key=self._key(name), Body=data, **self._encryption()
            )
        except (BotoCoreError, ClientError) as error:
            raise self._failure(error, "write to") from None

    def delete(self, name: str) -> None:
        try:
            self.client.delete_object(Bucket=self.bucket, Key=self._key(name))
        except (BotoCoreError, ClientError) as error:
            raise self._failure(error, "delete from") from None
