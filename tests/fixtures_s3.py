"""A real SeaweedFS S3 server per test session, and a fresh bucket per test."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

from contingency.lab.s3 import S3Server, start_s3
from inventory.datasets import BackupLocation
from tasks.storage import Store

KEY_ID, KEY = "test-s3-key-id", "test-s3-key"


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    srv = start_s3(tmp_path_factory.mktemp("s3"))
    old = {
        k: os.environ.get(k)
        for k in ("CONTINGENCY_SECRET_TEST_S3_KEY_ID", "CONTINGENCY_SECRET_TEST_S3_KEY")
    }
    os.environ["CONTINGENCY_SECRET_TEST_S3_KEY_ID"] = "lab-access"
    os.environ["CONTINGENCY_SECRET_TEST_S3_KEY"] = "lab-secret-value"
    yield srv
    srv.stop()
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture()
def s3_location(s3_server: S3Server) -> BackupLocation:
    """A location in a fresh bucket (created) on the session's server."""
    loc = BackupLocation(
        bucket=f"t-{uuid.uuid4().hex[:12]}", prefix="ds", endpoint=s3_server.endpoint,
        key_id_ref=KEY_ID, key_ref=KEY,
    )  # fmt: skip
    Store.for_location(loc).ensure_bucket()
    return loc
