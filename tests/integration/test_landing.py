"""Hashing a restore's copy as it lands, on a real sshd: the hash counts only for the
bytes that stayed on disk, a rewrite voids it, and nothing is left running."""

from __future__ import annotations

import hashlib
import os
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import tasks.actions.landing as landing_mod
from flows.backup import take_backup
from inventory.datasets import BackupLocation, Dataset
from inventory.models import Host
from inventory.settings import Settings
from tasks.actions.landing import LandingHash
from tasks.actions.restore import RestoreHooks, restore_point
from tasks.ssh.models import CommandResult
from tasks.ssh.run import SSHConnection
from tasks.storage import Store

pytestmark = pytest.mark.integration
SIZE = 3 * 1024 * 1024


@pytest.fixture()
def conn(ssh_host: Host) -> Iterator[SSHConnection]:
    c = SSHConnection.connect(ssh_host, Settings(ssh_connect_timeout=15.0))
    yield c
    c.close()


def _write_slowly(path: Path, data: bytes, pieces: int = 6) -> None:
    """Write ``data`` to ``path`` in ``pieces``, 0.1 s apart, like a download."""
    step = len(data) // pieces
    with path.open("wb") as f:
        for i in range(0, len(data), step):
            f.write(data[i : i + step])
            f.flush()
            time.sleep(0.1)


def _followers(path: Path) -> list[str]:
    out = subprocess.run(["pgrep", "-af", f"tail .*{path}"], capture_output=True, text=True)
    return [line for line in out.stdout.splitlines() if "pgrep" not in line]


def test_bytes_hashed_as_they_land_match(conn: SSHConnection, tmp_path: Path) -> None:
    data, path, seen = os.urandom(SIZE), tmp_path / "copy.bin", []
    with LandingHash(conn, str(path), SIZE, seen.append) as landing:
        _write_slowly(path, data)
    assert landing.matches(hashlib.sha256(data).hexdigest())
    assert not landing.matches(hashlib.sha256(data[:-1] + b"\0").hexdigest())
    [recorded] = seen  # the report lists it with the restore's other commands
    assert recorded.ok and "tail -c +1 -F" in recorded.command


def test_a_rewrite_after_the_hash_voids_it(conn: SSHConnection, tmp_path: Path) -> None:
    """A writer that starts over (curl retrying) after every byte was hashed: the hash
    of the first copy must not vouch for the second."""
    first, second, path = os.urandom(SIZE), os.urandom(SIZE), tmp_path / "copy.bin"
    with LandingHash(conn, str(path), SIZE) as landing:
        _write_slowly(path, first)
        time.sleep(0.5)  # the follower has hashed all of ``first``
        path.write_bytes(second)
    assert not landing.matches(hashlib.sha256(first).hexdigest())
    assert not landing.matches(hashlib.sha256(second).hexdigest())


def test_a_short_copy_ends_the_follower(conn: SSHConnection, tmp_path: Path) -> None:
    data, path = os.urandom(SIZE), tmp_path / "copy.bin"
    started = time.monotonic()
    with LandingHash(conn, str(path), SIZE) as landing:
        _write_slowly(path, data[: SIZE // 2], pieces=3)  # the download broke off
    assert time.monotonic() - started < 10, "the follower waited for bytes that never came"
    assert not landing.matches(hashlib.sha256(data).hexdigest())
    deadline = time.monotonic() + 3
    while _followers(path) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _followers(path) == []


@pytest.fixture()
def backed_up(conn: SSHConnection, s3_location: BackupLocation, tmp_path: Path):
    store = Store.for_location(s3_location)
    (tmp_path / "live").mkdir()
    live = tmp_path / "live" / "data.bin"
    good = os.urandom(SIZE)
    live.write_bytes(good)
    ds = Dataset(host="h", path=str(live), location=s3_location, restore_via="direct")
    take_backup(ds, conn, store)
    [point] = store.restore_points(s3_location.prefix)
    live.write_bytes(b"current")
    return ds, store, point, live, good


def test_a_direct_restore_hashed_as_it_landed_does_not_read_the_copy_again(
    conn: SSHConnection, backed_up
) -> None:
    ds, store, point, live, good = backed_up
    seen: list[CommandResult] = []
    res = restore_point(ds, conn, store, point, hooks=RestoreHooks(record=seen.append))
    assert res.ok and res.via == "direct", res.reason
    assert live.read_bytes() == good
    [follow] = [r for r in seen if "tail -c +1 -F" in r.command]
    assert point.manifest.sha256 in follow.stdout_tail
    assert not any("openssl dgst" in r.command for r in seen if r is not follow)


def test_without_a_landing_hash_the_copy_is_hashed_from_disk(
    conn: SSHConnection, backed_up, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A host where following fails (no GNU tail): the restore still checks the
    SHA-256, the slower way, and still restores."""
    ds, store, point, live, good = backed_up
    monkeypatch.setattr(landing_mod, "follow_command", lambda _p, _s: "exit 127")
    seen: list[CommandResult] = []
    res = restore_point(ds, conn, store, point, hooks=RestoreHooks(record=seen.append))
    assert res.ok, res.reason
    assert live.read_bytes() == good
    assert any("openssl dgst" in r.command and point.manifest.sha256 in r.command for r in seen)


def test_the_follower_and_the_copy_share_the_connection_safely(
    conn: SSHConnection, tmp_path: Path
) -> None:
    """Four copies at once, each with its follower, on one connection: each hash is
    its own copy's."""
    datas = [os.urandom(SIZE // 4) for _ in range(4)]
    results: dict[int, bool] = {}

    def one(i: int) -> None:
        path = tmp_path / f"c{i}.bin"
        with LandingHash(conn, str(path), len(datas[i])) as landing:
            _write_slowly(path, datas[i], pieces=4)
        results[i] = landing.matches(hashlib.sha256(datas[i]).hexdigest())

    threads = [threading.Thread(target=one, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == {0: True, 1: True, 2: True, 3: True}
