"""tasks/storage.py against a real SeaweedFS server."""

from __future__ import annotations

import hashlib
import io
import os

import pytest

from inventory.datasets import BackupLocation
from tasks import storage
from tasks.storage import ChecksumMismatch, ObjectMissing, Store

pytestmark = pytest.mark.integration


def _upload(store: Store, key: str, data: bytes) -> storage.Manifest:
    return store.upload_stream(key, io.BytesIO(data), source_host="h", source_path="/d", fmt="file")


def test_roundtrip_multipart_and_manifest(s3_location: BackupLocation, monkeypatch) -> None:
    monkeypatch.setattr(storage, "PART_SIZE", 5 * 1024 * 1024)
    store = Store.for_location(s3_location)
    data = os.urandom(12 * 1024 * 1024 + 7)
    man = _upload(store, "ds/20260101T000000Z.bin", data)
    assert man.size == len(data) and man.sha256 == hashlib.sha256(data).hexdigest()
    [point] = store.restore_points("ds")
    assert point.key == "ds/20260101T000000Z.bin"
    out = io.BytesIO()
    assert store.download_to(point.key, out.write, expect=point.manifest) == man.sha256
    assert out.getvalue() == data


def test_empty_object(s3_location: BackupLocation) -> None:
    store = Store.for_location(s3_location)
    man = _upload(store, "ds/e.bin", b"")
    out = io.BytesIO()
    store.download_to("ds/e.bin", out.write, expect=man)
    assert out.getvalue() == b""


def test_corrupt_truncated_missing(s3_location: BackupLocation) -> None:
    store = Store.for_location(s3_location)
    data = os.urandom(300_000)
    man = _upload(store, "ds/x.bin", data)
    bad = bytearray(data)
    bad[1000] ^= 0xFF
    store.client.put_object(Bucket=s3_location.bucket, Key="ds/x.bin", Body=bytes(bad))
    with pytest.raises(ChecksumMismatch, match="ds/x.bin"):
        store.download_to("ds/x.bin", io.BytesIO().write, expect=man)
    store.client.put_object(Bucket=s3_location.bucket, Key="ds/x.bin", Body=data[:1000])
    with pytest.raises(ChecksumMismatch, match="got 1000 bytes"):
        store.download_to("ds/x.bin", io.BytesIO().write, expect=man)
    store.client.delete_object(Bucket=s3_location.bucket, Key="ds/x.bin")
    with pytest.raises(ObjectMissing, match="ds/x.bin"):
        store.download_to("ds/x.bin", io.BytesIO().write, expect=man)


def test_errors_never_carry_secrets(s3_location: BackupLocation) -> None:
    store = Store.for_location(s3_location)
    with pytest.raises(ObjectMissing) as info:
        store.manifest("ds/none.bin")
    assert "lab-secret-value" not in str(info.value)
