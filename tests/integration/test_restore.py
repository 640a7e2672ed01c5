"""Restore over real sshd from real SeaweedFS: live data is never lost."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from flows.backup import take_backup
from inventory.datasets import BackupLocation, Dataset
from inventory.models import Host
from inventory.settings import Settings
from tasks.actions.restore import restore_point
from tasks.ssh.run import SSHConnection
from tasks.storage import Store

pytestmark = pytest.mark.integration


@pytest.fixture()
def setup(ssh_host: Host, s3_location: BackupLocation, tmp_path: Path):
    store = Store.for_location(s3_location)
    # 15 s: the swap opens its channel after the S3 restart, on a busy CI machine
    conn = SSHConnection.connect(ssh_host, Settings(ssh_connect_timeout=15.0))
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
    # corrupt bytes under their own key, with the good backup's manifest (an overwrite of
    # the same key can be served stale by the S3 server for a moment under load)
    bad_key, bad = point.key + ".corrupt", good[:-1] + b"\0"
    store.client.put_object(Bucket=store.bucket, Key=bad_key, Body=bad)
    # the test is about what the restore does with corrupt bytes: wait until the server
    # serves them (once in CI it served the good bytes for the new key, and the restore
    # rightly restored bytes that matched the manifest)
    served_bad = False
    for _ in range(50):
        body = store.client.get_object(Bucket=store.bucket, Key=bad_key)["Body"].read()
        if body == bad:
            served_bad = True
            break
        time.sleep(0.1)
    assert served_bad, "the S3 server never served the corrupt bytes just written"
    res = restore_point(ds, conn, store, point.model_copy(update={"key": bad_key}))
    assert not res.ok and "download failed" in res.reason and "SHA-256" in res.reason
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


@pytest.fixture()
def own_s3(tmp_path: Path):
    """A SeaweedFS server of this test's own (the test kills it)."""
    from contingency.lab.s3 import start_s3

    servers = [start_s3(tmp_path / "s3")]
    yield servers
    for srv in servers:
        if srv.proc.poll() is None:
            srv.kill()  # throw-away data: no graceful shutdown needed


def _big_setup(own_s3, ssh_host: Host, tmp_path: Path):
    from tests.fixtures_s3 import KEY, KEY_ID

    loc = BackupLocation(
        bucket="kill", prefix="ds", endpoint=own_s3[0].endpoint, key_id_ref=KEY_ID, key_ref=KEY
    )
    store = Store.for_location(loc)
    store.ensure_bucket()
    # 15 s: the swap opens its channel after the S3 restart, on a busy CI machine
    conn = SSHConnection.connect(ssh_host, Settings(ssh_connect_timeout=15.0))
    (tmp_path / "live").mkdir()
    live = tmp_path / "live" / "data.bin"
    live.write_bytes(os.urandom(48 * 1024 * 1024))
    ds = Dataset(host="h", path=str(live), location=loc)
    take_backup(ds, conn, store)
    [point] = store.restore_points("ds")
    backup = live.read_bytes()
    live.write_bytes(b"current")
    return ds, conn, store, point, live, backup


def test_s3_killed_mid_download_resumes_with_a_ranged_get(
    own_s3, ssh_host: Host, s3_server, tmp_path: Path
) -> None:
    from contingency.lab.s3 import start_s3

    ds, conn, store, point, live, backup = _big_setup(own_s3, ssh_host, tmp_path)
    killed: list[int] = []

    def progress(done: int) -> None:
        if not killed and done >= 8 * 1024 * 1024:
            killed.append(done)
            own_s3[0].kill()  # mid-download, as a crash would
            own_s3.append(start_s3(own_s3[0].data_dir, s3_port=own_s3[0].port))

    res = restore_point(ds, conn, store, point, progress=progress)
    conn.close()
    assert killed and res.ok, res.reason
    assert live.read_bytes() == backup


def test_s3_killed_for_good_leaves_live_untouched(
    own_s3, ssh_host: Host, s3_server, tmp_path: Path
) -> None:
    ds, conn, store, point, live, _ = _big_setup(own_s3, ssh_host, tmp_path)
    killed: list[int] = []

    def progress(done: int) -> None:
        if not killed and done >= 8 * 1024 * 1024:
            killed.append(done)
            own_s3[0].kill()

    res = restore_point(ds, conn, store, point, progress=progress)
    conn.close()
    assert killed and not res.ok
    assert "download failed, live data untouched" in res.reason and "gave up" in res.reason
    assert live.read_bytes() == b"current"
    assert sorted(p.name for p in live.parent.iterdir()) == ["data.bin"]
