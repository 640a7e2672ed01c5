"""Restore over real sshd from real SeaweedFS: live data is never lost."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from flows.backup import take_backup
from inventory.datasets import BackupLocation, Dataset
from inventory.models import Host
from inventory.settings import Settings
from tasks.restore import restore_point
from tasks.ssh import SSHConnection
from tasks.storage import Store

pytestmark = pytest.mark.integration


@pytest.fixture()
def setup(ssh_host: Host, s3_location: BackupLocation, tmp_path: Path):
    store = Store.for_location(s3_location)
    conn = SSHConnection.connect(ssh_host, Settings(ssh_connect_timeout=5.0))
    (tmp_path / "live").mkdir()
    live = tmp_path / "live" / "data.bin"
    good = os.urandom(1024 * 1024)
    live.write_bytes(good)
    ds = Dataset(host="h", path=str(live), location=s3_location)
    man = take_backup(ds, conn, store)
    [point] = store.restore_points("ds")
    assert point.key == man.key
    yield ds, conn, store, point, live, good
    conn.close()


def test_restore_after_corruption_is_identical(setup) -> None:
    ds, conn, store, point, live, good = setup
    live.write_bytes(b"corrupted")
    res = restore_point(ds, conn, store, point)
    assert res.ok, res.reason
    assert live.read_bytes() == good
    assert Path(res.aside).read_bytes() == b"corrupted"  # kept, never deleted


def test_corrupt_object_leaves_live_untouched(setup) -> None:
    ds, conn, store, point, live, good = setup
    live.write_bytes(b"current")
    store.client.put_object(Bucket=store.bucket, Key=point.key, Body=good[:-1] + b"\0")
    res = restore_point(ds, conn, store, point)
    assert not res.ok and "download failed" in res.reason and "sha256" in res.reason
    assert live.read_bytes() == b"current"
    assert sorted(p.name for p in live.parent.iterdir()) == ["data.bin"]


def test_missing_object_and_verify_failure(setup) -> None:
    ds, conn, store, point, live, good = setup
    live.write_bytes(b"current")
    bad = ds.model_copy(update={"verify": "false {path}"})
    res = restore_point(bad, conn, store, point)
    assert not res.ok and "verify command failed" in res.reason
    store.client.delete_object(Bucket=store.bucket, Key=point.key)
    res = restore_point(ds, conn, store, point)
    assert not res.ok and "NoSuchKey" in res.reason
    assert live.read_bytes() == b"current"


@pytest.fixture()
def small_fs(tmp_path: Path):
    """A 4 MiB ext4 filesystem loop-mounted under tmp_path (needs root)."""
    import subprocess

    img, mnt = tmp_path / "small.img", tmp_path / "small"
    mnt.mkdir()
    subprocess.run(["truncate", "-s", "4M", img], check=True)
    subprocess.run(["mkfs.ext4", "-q", "-F", "-m", "0", img], check=True)
    # root is required (CI runs as root); a failed mount is a failure, not a skip
    subprocess.run(["mount", "-o", "loop", img, mnt], check=True)
    try:
        yield mnt
    finally:
        subprocess.run(["umount", mnt], check=False)


def test_disk_full_leaves_live_untouched(setup, small_fs: Path) -> None:
    ds, conn, store, point, _, good = setup
    live = small_fs / "data.bin"
    live.write_bytes(b"current")
    st = os.statvfs(small_fs)
    free = st.f_bavail * st.f_frsize
    (small_fs / "filler").write_bytes(os.urandom(free - 300 * 1024))  # 300 KiB < 1 MiB left
    os.sync()

    res = restore_point(ds, conn, store, point, target=str(live))
    assert not res.ok and "download failed" in res.reason, res.reason
    assert live.read_bytes() == b"current"
    assert sorted(p.name for p in small_fs.iterdir()) == ["data.bin", "filler", "lost+found"]
