"""Backup over real sshd into real SeaweedFS, read back verified."""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
from pathlib import Path

import pytest

from flows.backup import take_backup
from inventory.datasets import BackupLocation, Dataset
from inventory.models import Host
from inventory.settings import Settings
from tasks.ssh.run import SSHConnection
from tasks.storage import Store

pytestmark = pytest.mark.integration


def test_backup_file_and_directory(
    ssh_host: Host, s3_location: BackupLocation, tmp_path: Path
) -> None:
    store = Store.for_location(s3_location)
    conn = SSHConnection.connect(ssh_host, Settings(ssh_connect_timeout=5.0))
    try:
        blob = tmp_path / "my data.bin"
        blob.write_bytes(os.urandom(3 * 1024 * 1024))
        ds = Dataset(host="h", path=str(blob), location=s3_location)
        man = take_backup(ds, conn, store)
        assert man.sha256 == hashlib.sha256(blob.read_bytes()).hexdigest()
        out = io.BytesIO()
        store.download_to(man.key, out.write, expect=man)
        assert out.getvalue() == blob.read_bytes()

        d = tmp_path / "dir"
        (d / "sub").mkdir(parents=True)
        (d / "sub" / "a.txt").write_text("alpha")
        dds = Dataset(
            host="h", path=str(d), kind="directory", format="tar.gz", location=s3_location
        )
        dman = take_backup(dds, conn, store)
        tgz = tmp_path / "b.tgz"
        with tgz.open("wb") as f:
            store.download_to(dman.key, f.write, expect=dman)
        listing = subprocess.run(["tar", "-tzf", tgz], capture_output=True, text=True).stdout
        assert "./sub/a.txt" in listing
        assert [p.key for p in store.restore_points("ds")] == [man.key, dman.key]
    finally:
        conn.close()
