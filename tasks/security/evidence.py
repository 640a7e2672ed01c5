"""Evidence from a host before any change (取证): each read-only command's output, and
the SHA-256 of listed files, uploaded to object storage with its own SHA-256, and a
manifest listing them (``<prefix>/<run>/<host>/manifest.json``).

Each item is kept exactly as the host sent it (stdout and stderr, up to 16 MiB); its
hash is taken here, before the upload, and the upload is read back and checked, so the
manifest's hashes are those of what the host said.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime

from pydantic import BaseModel, Field

from inventory.datasets import BackupLocation
from inventory.models import Host
from inventory.settings import Settings, get_settings
from tasks.storage import Store


class EvidenceRecord(BaseModel):
    name: str
    command: str
    exit_code: int | None
    size: int
    sha256: str
    key: str
    truncated: bool = False
    collected_at: datetime


class EvidenceManifest(BaseModel):
    host: str
    run_id: str
    bucket: str
    items: list[EvidenceRecord] = Field(default_factory=list)
    manifest_key: str = ""
    manifest_sha256: str = ""

    def as_markdown(self) -> str:
        rows = [
            f"Kept in `s3://{self.bucket}/{self.manifest_key}` "
            f"(manifest SHA-256 `{self.manifest_sha256}`), collected before any change.",
            "",
            "| item | command | exit | bytes | SHA-256 |",
            "|---|---|---|---|---|",
        ]
        rows += [
            f"| {r.name} | `{_cell(r.command)}` | {'?' if r.exit_code is None else r.exit_code} "
            f"| {r.size}{' (truncated)' if r.truncated else ''} | `{r.sha256}` |"
            for r in self.items
        ]
        return "\n".join(rows)


def _cell(text: str) -> str:
    """Text for a markdown table cell (a ``|`` would end the cell)."""
    return text.replace("|", "\\|")


def collect(
    host: Host,
    items: list[tuple[str, str]],
    location: BackupLocation,
    run_id: str,
    settings: Settings | None = None,
) -> EvidenceManifest:
    """Run each ``(name, command)`` on ``host`` and upload its output; then the manifest.
    Raises ContingencyError (SSH, storage) — the plan then stops before any change."""
    from inventory.errors import StorageError
    from tasks.ssh.run import get_connection
    from tasks.ssh.stream import capture

    settings = settings or get_settings()
    store = Store.for_location(location, settings)
    store.ensure_bucket()
    base = f"{location.prefix.rstrip('/')}/{run_id}/{host.name}"
    conn = get_connection(host, settings)
    manifest = EvidenceManifest(host=host.name, run_id=run_id, bucket=location.bucket)
    for name, command in items:
        at = datetime.now(UTC)
        status, data, truncated = capture(conn, command)
        digest = hashlib.sha256(data).hexdigest()
        key = f"{base}/{name}.txt"
        store.put_bytes(key, data, content_type="text/plain")
        back = store.client.get_object(Bucket=store.bucket, Key=key)["Body"].read()
        if hashlib.sha256(back).hexdigest() != digest:
            raise StorageError(f"s3://{store.bucket}/{key}: read back differs from what was sent")
        manifest.items.append(
            EvidenceRecord(
                name=name, command=command, exit_code=status, size=len(data), sha256=digest,
                key=key, truncated=truncated, collected_at=at,
            )
        )  # fmt: skip
    body = json.dumps(manifest.model_dump(mode="json"), indent=2, sort_keys=True).encode()
    manifest.manifest_key = f"{base}/manifest.json"
    manifest.manifest_sha256 = hashlib.sha256(body).hexdigest()
    store.put_bytes(manifest.manifest_key, body, content_type="application/json")
    return manifest
