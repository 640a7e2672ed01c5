"""Direct restores (the host downloads from a pre-signed URL) over real sshd from real
SeaweedFS: the bytes arrive verified, the URL is recorded nowhere, ``auto`` falls back
to SFTP when the host cannot fetch."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from contingency.lab.sshd import SshdServer, free_port
from flows.backup import take_backup
from inventory.datasets import BackupLocation, Dataset, RestoreVia
from inventory.models import Host
from inventory.settings import Settings
from tasks.actions.restore import RestoreHooks, RestoreResult, restore_point
from tasks.ssh.models import CommandResult
from tasks.ssh.run import SSHConnection
from tasks.storage import RestorePoint, Store
from tests.fixtures_ssh import ClientKey

pytestmark = pytest.mark.integration
LEAKS = ("X-Amz-Signature", "X-Amz-Credential", "X-Amz-Expires")


def _assert_no_url(records: list[CommandResult], res: RestoreResult, logs: str) -> None:
    """No pre-signed URL in what the restore recorded, returned or logged (at DEBUG,
    botocore's own records included)."""
    texts = [r.model_dump_json() for r in records] + [res.model_dump_json(), logs]
    for text in texts:
        for leak in LEAKS:
            assert leak not in text, text
    for r in records:  # no query string in any recorded command or output
        assert "?" not in r.command + r.stdout_tail + r.stderr_tail, r


@pytest.fixture()
def conn(ssh_host: Host) -> Iterator[SSHConnection]:
    c = SSHConnection.connect(ssh_host, Settings(ssh_connect_timeout=15.0))
    yield c
    c.close()


def _backup(ds: Dataset, conn: SSHConnection, store: Store) -> RestorePoint:
    man = take_backup(ds, conn, store)
    [point] = store.restore_points(ds.location.prefix)
    assert point.key == man.key
    return point


@dataclass
class Backed:
    """A file dataset with one backup of ``good``, whose live copy now holds ``now``."""

    conn: SSHConnection
    store: Store
    live: Path
    good: bytes
    ds: Dataset
    point: RestorePoint
    records: list[CommandResult] = field(default_factory=list)

    def restore(self, ds: Dataset | None = None, key: str = "") -> RestoreResult:
        """Restore the backup (or the object ``key`` under its manifest); every command
        the restore runs is appended to ``records``."""
        point = self.point.model_copy(update={"key": key}) if key else self.point
        hooks = RestoreHooks(record=self.records.append)
        return restore_point(ds or self.ds, self.conn, self.store, point, hooks=hooks)


@pytest.fixture()
def backed_up(
    s3_location: BackupLocation, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> Callable[..., Backed]:
    """``make(conn, via, size, now, loc=s3_location)``: ``size`` random bytes at
    ``<tmp>/live/data.bin`` backed up, a file dataset restored ``via``, the live copy
    then overwritten with ``now``, and the log captured from there at DEBUG."""

    def make(
        conn: SSHConnection, via: RestoreVia, size: int, now: bytes,
        loc: BackupLocation | None = None,
    ) -> Backed:  # fmt: skip
        store = Store.for_location(s3_location)
        live = tmp_path / "live" / "data.bin"
        live.parent.mkdir(exist_ok=True)
        good = os.urandom(size)
        live.write_bytes(good)
        ds = Dataset(host="h", path=str(live), location=loc or s3_location, restore_via=via)
        point = _backup(ds, conn, store)
        live.write_bytes(now)
        caplog.set_level(logging.DEBUG)
        caplog.clear()
        return Backed(conn, store, live, good, ds, point)

    return make


def test_direct_restore_of_a_file(conn: SSHConnection, backed_up, caplog) -> None:
    b = backed_up(conn, "direct", 3 * 1024 * 1024 + 17, b"corrupted")
    res = b.restore()
    assert res.ok and res.via == "direct" and not res.fallback, res
    assert b.live.read_bytes() == b.good
    assert Path(res.aside).read_bytes() == b"corrupted"
    records, point = b.records, b.point
    curl, follow, check = records[0], records[1], records[2]
    assert curl.command.startswith("curl ") and "-K -" in curl.command and curl.ok
    assert "<pre-signed URL> on stdin" in curl.command
    # SHA-256 checked on the host, as the copy landed (tasks.actions.landing)
    assert follow.stdout_tail.split() == [point.manifest.sha256, "unchanged"]
    assert check.ok and "openssl dgst" not in check.command
    _assert_no_url(records, res, caplog.text)


def test_direct_restore_of_a_tar_gz_directory(
    conn: SSHConnection, s3_location: BackupLocation, tmp_path: Path, caplog
) -> None:
    caplog.set_level(logging.DEBUG)
    store = Store.for_location(s3_location)
    live = tmp_path / "site"
    (live / "sub").mkdir(parents=True)
    files = {"index.html": b"<h1>hi</h1>", "sub/blob.bin": os.urandom(512 * 1024)}
    for name, data in files.items():
        (live / name).write_bytes(data)
    ds = Dataset(
        host="h", path=str(live), kind="directory", format="tar.gz", location=s3_location,
        restore_via="direct", verify="test -f {path}/index.html",
    )  # fmt: skip
    point = _backup(ds, conn, store)
    (live / "index.html").write_bytes(b"defaced")
    (live / "sub" / "blob.bin").unlink()
    records: list[CommandResult] = []
    caplog.clear()
    res = restore_point(ds, conn, store, point, hooks=RestoreHooks(record=records.append))
    assert res.ok and res.via == "direct", res
    assert {n: (live / n).read_bytes() for n in files} == files
    assert (Path(res.aside) / "index.html").read_bytes() == b"defaced"
    assert records[0].command.startswith("curl ")
    _assert_no_url(records, res, caplog.text)


def _corrupt_copy(store: Store, point: RestorePoint, good: bytes) -> str:
    """Corrupt bytes under their own key (see test_restore.py), once the server serves them."""
    bad_key, bad = point.key + ".corrupt", good[:-1] + b"\0"
    store.client.put_object(Bucket=store.bucket, Key=bad_key, Body=bad)
    for _ in range(50):
        if store.client.get_object(Bucket=store.bucket, Key=bad_key)["Body"].read() == bad:
            return bad_key
        time.sleep(0.1)
    raise AssertionError("the S3 server never served the corrupt bytes just written")


def test_direct_corrupt_object_fails_before_the_swap(conn: SSHConnection, backed_up) -> None:
    b = backed_up(conn, "direct", 1024 * 1024, b"current")
    res = b.restore(key=_corrupt_copy(b.store, b.point, b.good))
    records, point, live = b.records, b.point, b.live
    assert not res.ok and not res.swapped and res.via == "direct", res
    assert "does not match the manifest's SHA-256" in res.reason
    assert "untouched" in res.reason
    # downloaded; hashed as it landed (not the manifest's hash); so hashed again: no match
    assert [r.exit_code for r in records[:3]] == [0, 0, 11]
    assert point.manifest.sha256 not in records[1].stdout_tail
    assert live.read_bytes() == b"current"
    assert sorted(p.name for p in live.parent.iterdir()) == ["data.bin"]  # cleaned up


def test_auto_falls_back_to_sftp_when_the_host_cannot_reach_the_store(
    conn: SSHConnection, s3_location: BackupLocation, backed_up, caplog
) -> None:
    """The hosts' address of the store is a closed port: curl's connection is refused."""
    loc = s3_location.model_copy(update={"host_endpoint": f"http://127.0.0.1:{free_port()}"})
    b = backed_up(conn, "auto", 1024 * 1024, b"corrupted", loc)
    res = b.restore()
    assert res.ok and res.via == "sftp", res
    assert "cannot connect to the store" in res.fallback, res.fallback
    assert b.live.read_bytes() == b.good
    assert b.records[0].command.startswith("curl ") and b.records[0].exit_code == 7
    assert "falling back to SFTP" in caplog.text and "cannot connect" in caplog.text
    _assert_no_url(b.records, res, caplog.text)
    # the same with `direct`: a failure, live data untouched
    b.live.write_bytes(b"current")
    res = b.restore(b.ds.model_copy(update={"restore_via": "direct"}))
    assert not res.ok and res.via == "direct" and "cannot connect to the store" in res.reason
    assert b.live.read_bytes() == b"current"


@pytest.fixture()
def host_without_curl(tmp_path: Path, ssh_client_key: ClientKey, ssh_home: Path) -> Iterator[Host]:
    """A second sshd whose sessions get a PATH with every usual command but curl."""
    import getpass

    bin_dir = tmp_path / "bin-no-curl"
    bin_dir.mkdir()
    for d in ("/usr/local/bin", "/usr/bin", "/bin", "/usr/sbin", "/sbin"):
        for exe in Path(d).iterdir() if Path(d).is_dir() else []:
            link = bin_dir / exe.name
            if exe.name != "curl" and not link.exists():
                link.symlink_to(exe)
    server = SshdServer(
        tmp_path / "sshd-no-curl", authorized_keys=[ssh_client_key.public],
        env={"PATH": str(bin_dir)},
    )  # fmt: skip
    server.start()
    try:
        yield Host(
            name="no-curl", address=server.address, port=server.port, user=getpass.getuser(),
            key_secret=ssh_client_key.secret_name, host_key=server.host_key_line,
        )  # fmt: skip
    finally:
        server.stop()


def test_auto_falls_back_to_sftp_on_a_host_without_curl(
    host_without_curl: Host, backed_up, caplog
) -> None:
    conn = SSHConnection.connect(host_without_curl, Settings(ssh_connect_timeout=15.0))
    try:
        assert not conn.run("command -v curl", timeout=10).ok  # really missing
        b = backed_up(conn, "auto", 256 * 1024, b"corrupted")
        res = b.restore()
    finally:
        conn.close()
    assert res.ok and res.via == "sftp", res
    assert res.fallback.startswith("curl is not installed on the host"), res.fallback
    assert b.live.read_bytes() == b.good
    assert "falling back to SFTP: curl is not installed" in caplog.text


def test_incident_transfer_step_downloads_direct_or_falls_back(
    ssh_host: Host, s3_location: BackupLocation, tmp_path: Path, caplog
) -> None:
    """The data-loss plan's download step (the executor's runner) honours restore_via."""
    from inventory.models import Inventory
    from remediations import runners
    from remediations.plan import TransferAction

    caplog.set_level(logging.DEBUG)
    store = Store.for_location(s3_location)
    live = tmp_path / "data.bin"
    live.write_bytes(os.urandom(200 * 1024))
    ds = Dataset(host=ssh_host.name, path=str(live), location=s3_location)
    conn = SSHConnection.connect(ssh_host)
    try:
        point = _backup(ds, conn, store)
    finally:
        conn.close()
    unreachable = s3_location.model_copy(
        update={"host_endpoint": f"http://127.0.0.1:{free_port()}"}
    )
    for via, loc, ok, detail in [
        ("direct", s3_location, True, "downloaded by the host (direct)"),
        ("auto", unreachable, True, "bytes relayed over SFTP; via SFTP: the direct download "
         "failed: the host cannot connect to the store"),
        ("direct", unreachable, False, "download failed: the host cannot connect to the store"),
    ]:  # fmt: skip
        inv = Inventory(
            hosts={ssh_host.name: ssh_host},
            datasets={"d": ds.model_copy(update={"restore_via": via, "location": loc})},
        )
        dest = tmp_path / f"copy-{via}-{loc.host_endpoint is None}"
        step = TransferAction(
            dataset="d", host=ssh_host.name, bucket=loc.bucket, key=point.key, path=str(dest),
            manifest=point.manifest, via=via,  # type: ignore[arg-type]
        )  # fmt: skip
        res = runners.transfer(1, step, inv)
        assert detail in res.detail, res.detail
        assert res.ok == ok
        if ok:
            assert dest.read_bytes() == live.read_bytes()
        assert "X-Amz-Signature" not in res.model_dump_json() + caplog.text
