"""The intake's outbox on a real SQLite file: order, retries, answers, durability."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from contingency.intake.outbox import Outbox


def test_most_urgent_first_then_oldest(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite")
    ids = box.add([("low", 3, False, "a"), ("crit", 0, False, "b"), ("warn", 2, True, "c")])
    assert [r.alert for r in box.due()] == ["crit", "warn", "low"]
    assert [r.id for r in box.due(limit=1)] == [ids[1]]
    assert box.due()[1].join_open is True and box.depth() == 3


def test_retry_backs_off_and_finish_answers(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite")
    [a, b] = box.add([("x", 2, False, "fa"), ("y", 2, False, "fb")])
    assert box.retry(a, 0, "not started yet: ConnectError") == 0.5
    assert [r.id for r in box.due()] == [b]  # a waits its backoff
    assert [r.id for r in box.due(now=time.time() + 1)] == [a, b]
    assert box.retry(a, 20, "again") == 30.0  # capped
    box.finish(b, "done", "run-1", "incident started", '{"flow_run_id": "run-1"}')
    assert box.answers([a, b]) == {b: '{"flow_run_id": "run-1"}'}
    assert box.result(b) == ("done", "run-1", "incident started") and box.depth() == 1


def test_absorbed_alerts_close_on_resolve_or_requeue(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite")
    [a, b] = box.add([("x", 2, False, "fa"), ("y", 2, False, "fb")])
    box.finish(a, "absorbed", "cause-run", "joined")
    box.finish(b, "absorbed", "cause-run", "joined")
    assert [r.run_id for r in box.absorbed()] == ["cause-run", "cause-run"]
    assert box.close_absorbed("fa", "resolved while absorbed") == 1
    box.requeue(b, "its cause ended and it still fires")
    assert [r.id for r in box.due()] == [b] and box.counts() == {"closed": 1, "pending": 1}


def test_what_was_stored_survives_a_kill_9(tmp_path: Path) -> None:
    """A child process stores alerts and is killed -9 at once: they are all there."""
    path = tmp_path / "o.sqlite"
    code = (
        "import os, signal\n"
        "from pathlib import Path\n"
        "from contingency.intake.outbox import Outbox\n"
        f"box = Outbox(Path({str(path)!r}))\n"
        "box.add([(f'alert-{i}', 2, False, f'fp-{i}') for i in range(200)])\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], timeout=60)
    assert done.returncode == -9
    box = Outbox(path)
    assert box.depth() == 200 and {r.alert for r in box.due()} == {f"alert-{i}" for i in range(200)}


def test_a_store_that_cannot_write_raises_and_keeps_nothing(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite")
    box.add([("kept", 2, False, "k")])
    box._db.execute("PRAGMA query_only = ON")  # what a read-only or failing disk does
    with pytest.raises(sqlite3.Error):
        box.add([("lost", 2, False, "l")])
    box._db.execute("PRAGMA query_only = OFF")
    assert [r.alert for r in box.due()] == ["kept"]


def test_the_webhook_side_waits_out_another_processes_write_and_gives_up_in_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The dispatcher's process holds the write lock (a real second process): the
    webhook's spinning outbox stores once it is released, and past ``BUSY_WAIT_S``
    it raises (the intake then answers 503: not stored), never hangs."""
    import contingency.intake.outbox as outbox_module

    path = tmp_path / "o.sqlite"
    box = Outbox(path, spin=True)
    hold = (
        "import sqlite3, sys, time\n"
        f"db = sqlite3.connect({str(path)!r}, isolation_level=None)\n"
        "db.execute('BEGIN IMMEDIATE'); print('locked', flush=True)\n"
        "time.sleep(float(sys.argv[1])); db.execute('COMMIT')\n"
    )

    def holder(seconds: float) -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            [sys.executable, "-c", hold, str(seconds)], stdout=subprocess.PIPE, text=True
        )
        assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
        return proc

    proc = holder(0.3)
    [rid] = box.add([("x", 2, False, "fa")])
    proc.wait(10)
    assert box.depth() == 1 and [r.id for r in box.due()] == [rid]

    monkeypatch.setattr(outbox_module, "BUSY_WAIT_S", 0.2)
    proc = holder(3)
    try:
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            box.add([("y", 2, False, "fb")])
    finally:
        proc.wait(10)
    assert box.depth() == 1


def test_dispatched_since_gives_each_rows_delay_once(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite")
    start = time.time() - 1
    [a, b, c] = box.add([("x", 2, False, "fa"), ("y", 2, False, "fb"), ("z", 2, False, "fc")])
    box.finish_many([(a, "done", "run-1", "incident started", None)])
    box.finish(b, "absorbed", "run-1", "joined")
    rows = box.dispatched_since(start)
    assert len(rows) == 2 and all(0 <= seconds < 60 for _, seconds in rows)
    assert box.dispatched_since(rows[-1][0]) == []  # nothing twice
    assert box.depth() == 1  # c is still pending: not dispatched
