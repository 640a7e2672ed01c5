"""Datasets: what the data-loss plan backs up, restores and drills.

Inventory YAML names secrets, never holds them: ``key_id_ref`` / ``key_ref`` are the
*names* of the secrets holding the S3 access key id and secret access key (resolved by
:func:`inventory.secrets.resolve_secret`).

Example (``datasets.yaml``)::

    datasets:
      orders-db:
        host: db-1
        path: /srv/orders/orders.sqlite
        kind: file
        format: sqlite
        services: [orders]
        verify: "sqlite3 {path} 'PRAGMA integrity_check'"
        rpo_s: 86400
        rto_s: 600
        location: {bucket: backups, prefix: orders-db, endpoint: "http://127.0.0.1:8333",
                   key_id_ref: lab-s3-key-id, key_ref: lab-s3-key}
        drill: {host: db-1, path: /srv/drills/orders-db}
        restore_via: auto      # sftp (default) | direct | auto — see Dataset.restore_via

    >>> ds = Dataset.model_validate({"host": "h", "path": "/d/x.db", "format": "sqlite",
    ...     "location": {"bucket": "bkp", "prefix": "x", "endpoint": "http://s3:8333",
    ...                  "key_id_ref": "id", "key_ref": "k"}})
    >>> ds.kind.value, ds.object_key("20260101T000000Z")
    ('file', 'x/20260101T000000Z.sqlite')
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Name = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,62}$")]  # as inventory.models


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


RestoreVia = Literal["sftp", "direct", "auto"]
"""How a restore gets the backup onto the host (see `Dataset.restore_via`)."""

SUFFIX = {"file": "bin", "tar": "tar", "tar.gz": "tar.gz", "sqlite": "sqlite"}


class DatasetKind(StrEnum):
    file = "file"
    directory = "directory"


class BackupFormat(StrEnum):
    file = "file"
    tar = "tar"
    tar_gz = "tar.gz"
    sqlite = "sqlite"


class BackupLocation(_Model):
    """Where a dataset's backups live: ``s3://bucket/prefix/<stamp>.<suffix>``."""

    bucket: str = Field(pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
    prefix: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9/_.-]*$")
    endpoint: str = Field(pattern=r"^https?://")
    region: str = "us-east-1"
    key_id_ref: Name
    """Name of the secret holding the access key id."""
    key_ref: Name
    """Name of the secret holding the secret access key."""
    host_endpoint: str | None = Field(default=None, pattern=r"^https?://")
    """The endpoint as the dataset's hosts reach it, for direct restores (the pre-signed
    URL is signed for this address); default ``endpoint``."""


class DrillTarget(_Model):
    """Where restore drills put their copy (a sandbox, never the live path)."""

    host: Name
    path: str = Field(pattern=r"^/")


class Dataset(_Model):
    """One piece of data the plan protects."""

    name: str = ""
    """Set by the loader from the YAML key."""
    host: Name
    path: str = Field(pattern=r"^/.*[^/]$")
    kind: DatasetKind = DatasetKind.file
    format: BackupFormat = BackupFormat.file
    services: list[Name] = Field(default_factory=list)
    location: BackupLocation
    verify: str = ""
    """Command run on the host to verify a restored copy; ``{path}`` is replaced by the
    shell-quoted path of the copy."""
    rpo_s: int = Field(default=86400, gt=0)
    rto_s: int = Field(default=3600, gt=0)
    drill: DrillTarget | None = None
    restore_via: RestoreVia = "sftp"
    """``sftp``: this process streams the object from the store to the host over SFTP
    (the default: it needs nothing on the host but sshd). ``direct``: the host itself
    downloads the object with ``curl`` from a short-lived pre-signed URL (it must reach
    ``location.host_endpoint`` or ``endpoint``); a failed download fails the restore.
    ``auto``: direct, and if the host cannot fetch (no curl, store unreachable, HTTP
    error, SHA-256 mismatch) the reason is logged and the restore falls back to SFTP.
    Every check after the download is the same for all three."""

    @model_validator(mode="after")
    def _format_fits_kind(self) -> Dataset:
        is_archive = self.format in (BackupFormat.tar, BackupFormat.tar_gz)
        if (self.kind is DatasetKind.directory) != is_archive:
            raise ValueError(f"format {self.format.value!r} does not fit kind {self.kind.value!r}")
        if self.drill and self.drill.host == self.host and self.drill.path == self.path:
            raise ValueError("the drill path is the live path; drills need a sandbox")
        return self

    def object_key(self, stamp: str) -> str:
        """The object key of the backup taken at ``stamp``."""
        return f"{self.location.prefix.rstrip('/')}/{stamp}.{SUFFIX[self.format.value]}"
