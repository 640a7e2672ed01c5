"""Object storage for backups: S3 client, streaming upload, verified download, manifests.

The only module that imports boto3/botocore. botocore errors become
:class:`StorageError` naming bucket and key, never credentials. Restores are verified
against the project's own SHA-256 manifest, not ETags (checksums ``when_required``).

Example::

    store = Store.for_location(ds.location)
    with open("backup.tar.gz", "rb") as src:
        man = store.upload_stream(ds.object_key(stamp), src, source_host="db-1",
                                  source_path="/srv/data", fmt="tar.gz")
    for point in store.restore_points(ds.location.prefix):
        print(point.key, point.manifest.size)
    digest = store.download_to(point.key, sink.write, expect=point.manifest)
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import IO, Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from pydantic import BaseModel
from urllib3.exceptions import HTTPError

from inventory.datasets import BackupLocation
from inventory.errors import ChecksumMismatch, ObjectMissing, StorageError
from inventory.secrets import resolve_secret
from inventory.settings import Settings


class _NoSignatures(logging.Filter):
    """Drops botocore's DEBUG records of what it signs and the signature: with a
    pre-signed URL they are the credential (every other record passes)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(("Signature", "CanonicalRequest", "StringToSign"))


logging.getLogger("botocore.auth").addFilter(_NoSignatures())

PART_SIZE = 16 * 1024 * 1024
CHUNK = 1024 * 1024
RETRIES = 5
MANIFEST_SUFFIX = ".manifest.json"


class Manifest(BaseModel):
    """Written beside every backup object as ``<key>.manifest.json``."""

    key: str
    size: int
    sha256: str
    created: datetime
    duration_s: float
    source_host: str
    source_path: str
    format: str


class RestorePoint(BaseModel):
    key: str
    manifest: Manifest

    def age_s(self, now: datetime | None = None) -> float:
        return ((now or datetime.now(UTC)) - self.manifest.created).total_seconds()


def make_client(
    loc: BackupLocation, settings: Settings | None = None, attempts: int = 5, timeout: float = 10
) -> Any:
    """A boto3 S3 client for ``loc``: path-style, checksums when_required, bounded retries."""
    cfg = Config(
        s3={"addressing_style": "path"},
        signature_version="s3v4",  # pre-signed URLs too (botocore would sign those SigV2)
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
        connect_timeout=timeout,
        read_timeout=6 * timeout,
        retries={"max_attempts": attempts, "mode": "standard"},
    )
    return boto3.client(
        "s3",
        endpoint_url=loc.endpoint,
        region_name=loc.region,
        aws_access_key_id=resolve_secret(loc.key_id_ref, settings).get_secret_value(),
        aws_secret_access_key=resolve_secret(loc.key_ref, settings).get_secret_value(),
        config=cfg,
    )


class Store:
    """Backups of one bucket. All calls wrap botocore errors into :class:`StorageError`."""

    def __init__(self, client: Any, bucket: str) -> None:
        self.client, self.bucket = client, bucket

    @classmethod
    def for_location(cls, loc: BackupLocation, settings: Settings | None = None) -> Store:
        return cls(make_client(loc, settings), loc.bucket)

    def _err(self, key: str, exc: Exception) -> StorageError:
        code = exc.response.get("Error", {}).get("Code", "") if isinstance(exc, ClientError) else ""
        kind = ObjectMissing if code in ("NoSuchKey", "404", "NotFound") else StorageError
        return kind(f"s3://{self.bucket}/{key}: {code or type(exc).__name__}")

    def ensure_bucket(self) -> None:
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except ClientError:
            try:
                self.client.create_bucket(Bucket=self.bucket)
            except (ClientError, BotoCoreError) as exc:
                raise self._err("", exc) from None

    def upload_stream(
        self, key: str, src: IO[bytes], *, source_host: str, source_path: str, fmt: str
    ) -> Manifest:
        """Multipart-upload ``src`` in PART_SIZE parts (bounded memory), then the manifest."""
        t0, digest, size = time.monotonic(), hashlib.sha256(), 0
        parts: list[dict[str, Any]] = []
        try:
            up = self.client.create_multipart_upload(Bucket=self.bucket, Key=key)
            uid = up["UploadId"]
            try:
                while True:
                    buf = _read_full(src, PART_SIZE)
                    if not buf and parts:
                        break
                    digest.update(buf)
                    size += len(buf)
                    r = self.client.upload_part(
                        Bucket=self.bucket, Key=key, UploadId=uid,
                        PartNumber=len(parts) + 1, Body=buf,
                    )  # fmt: skip
                    parts.append({"PartNumber": len(parts) + 1, "ETag": r["ETag"]})
                    if len(buf) < PART_SIZE:
                        break
                self.client.complete_multipart_upload(
                    Bucket=self.bucket, Key=key, UploadId=uid, MultipartUpload={"Parts": parts}
                )
            except BaseException:
                self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=uid)
                raise
            man = Manifest(
                key=key, size=size, sha256=digest.hexdigest(), created=datetime.now(UTC),
                duration_s=round(time.monotonic() - t0, 3), source_host=source_host,
                source_path=source_path, format=fmt,
            )  # fmt: skip
            self.client.put_object(
                Bucket=self.bucket, Key=key + MANIFEST_SUFFIX, Body=man.model_dump_json().encode()
            )
            return man
        except (ClientError, BotoCoreError) as exc:
            raise self._err(key, exc) from None

    def put_bytes(self, key: str, data: bytes, content_type: str = "text/markdown") -> None:
        """A small object in one PUT (reports)."""
        try:
            self.client.put_object(Bucket=self.bucket, Key=key, Body=data, ContentType=content_type)
        except (ClientError, BotoCoreError) as exc:
            raise self._err(key, exc) from None

    def manifest(self, key: str) -> Manifest:
        try:
            body = self.client.get_object(Bucket=self.bucket, Key=key + MANIFEST_SUFFIX)["Body"]
            return Manifest.model_validate(json.loads(body.read()))
        except (ClientError, BotoCoreError) as exc:
            raise self._err(key + MANIFEST_SUFFIX, exc) from None

    def restore_points(self, prefix: str) -> list[RestorePoint]:
        """Backups under ``prefix`` that have a manifest, oldest first."""
        points, pfx = [], prefix.rstrip("/") + "/"
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=pfx
            )
            keys = [o["Key"] for p in pages for o in p.get("Contents", [])]
        except (ClientError, BotoCoreError) as exc:
            raise self._err(pfx, exc) from None
        for k in keys:
            if k.endswith(MANIFEST_SUFFIX):
                points.append(
                    RestorePoint(
                        key=k[: -len(MANIFEST_SUFFIX)],
                        manifest=self.manifest(k[: -len(MANIFEST_SUFFIX)]),
                    )
                )
        return sorted(points, key=lambda p: p.manifest.created)

    def presigned_get(self, key: str, expires_s: int) -> str:
        """A pre-signed GET URL for ``key`` valid ``expires_s`` seconds (no request is
        made). The URL is a credential: never log it; errors do not quote it."""
        try:
            url = self.client.generate_presigned_url(
                "get_object", Params={"Bucket": self.bucket, "Key": key}, ExpiresIn=expires_s
            )
        except (ClientError, BotoCoreError) as exc:
            raise StorageError(
                f"s3://{self.bucket}/{key}: cannot pre-sign: {type(exc).__name__}"
            ) from None
        return str(url)

    def download_to(
        self, key: str, write: Callable[[bytes], Any], *, expect: Manifest,
        progress: Callable[[int], None] | None = None, sha256: bool = True,
    ) -> str:  # fmt: skip
        """Stream ``key`` into ``write``, SHA-256 on the fly, resuming with ranged GETs;
        returns the digest. ``sha256=False`` checks only the size (and returns ""): for a
        caller that hashes the bytes where they land, which is the check that counts.

        Raises ObjectMissing, ChecksumMismatch (size or digest differs), StorageError.
        """
        digest, got, attempts = _Digest(sha256), 0, 0
        while True:
            try:
                rng = {"Range": f"bytes={got}-"} if got else {}
                resp = self.client.get_object(Bucket=self.bucket, Key=key, **rng)
                for chunk in resp["Body"].iter_chunks(CHUNK):
                    digest.update(chunk)
                    write(chunk)
                    got += len(chunk)
                    if progress:
                        progress(got)
                break
            except (ClientError, BotoCoreError, HTTPError, OSError) as exc:
                if isinstance(exc, ClientError) and self._err(key, exc).__class__ is ObjectMissing:
                    raise self._err(key, exc) from None
                if isinstance(exc, ClientError) and got and got >= expect.size:
                    break  # InvalidRange: everything already read
                attempts += 1
                if attempts > RETRIES:
                    raise StorageError(
                        f"s3://{self.bucket}/{key}: gave up after {got} bytes"
                    ) from None
                time.sleep(min(2**attempts * 0.2, 5))
        if got != expect.size or digest.hexdigest() not in (expect.sha256, ""):
            raise ChecksumMismatch(
                f"s3://{self.bucket}/{key}: got {got} bytes sha256 {digest.hexdigest()[:12]}…, "
                f"manifest says {expect.size} bytes sha256 {expect.sha256[:12]}…"
            )
        return digest.hexdigest()


class _Digest:
    """SHA-256 of what is fed to it, or (``on=False``) nothing: ``hexdigest()`` is ""."""

    def __init__(self, on: bool) -> None:
        self._h = hashlib.sha256() if on else None

    def update(self, chunk: bytes) -> None:
        if self._h is not None:
            self._h.update(chunk)

    def hexdigest(self) -> str:
        return self._h.hexdigest() if self._h is not None else ""


def _read_full(src: IO[bytes], n: int) -> bytes:
    chunks, left = [], n
    while left:
        b = src.read(left)
        if not b:
            break
        chunks.append(b)
        left -= len(b)
    return b"".join(chunks)


def upload_report(name: str, data: bytes, settings: Settings) -> str | None:
    """Put one report (``<prefix>/<name>``) in the configured report bucket, creating the
    bucket if needed; returns its s3:// address, None if no bucket is configured.
    Few retries and short timeouts: an incident must not wait on a slow bucket.
    Raises StorageError naming the bucket and key (the caller logs and lists it)."""
    if not (settings.report_s3_endpoint and settings.report_s3_bucket):
        return None
    loc = BackupLocation(
        bucket=settings.report_s3_bucket,
        prefix=settings.report_s3_prefix,
        endpoint=settings.report_s3_endpoint,
        key_id_ref=settings.report_s3_key_id_ref,
        key_ref=settings.report_s3_key_ref,
    )
    store = Store(make_client(loc, settings, attempts=2, timeout=5), loc.bucket)
    key = f"{loc.prefix.rstrip('/')}/{name}"
    store.ensure_bucket()
    store.put_bytes(key, data)
    return f"s3://{loc.bucket}/{key}"
