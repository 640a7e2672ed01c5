"""The intake's durable outbox: alerts are stored (SQLite, WAL, fsync on commit) before
the 202, and a dispatcher turns them into incidents afterwards, with retries.

Why SQLite in the intake's state dir: one ``INSERT`` transaction per post is a single
fsync (a 200-alert post is answered in about 19 ms, ``benchmarks/storm.py``), it needs no
other server (the intake must take alerts while PostgreSQL, Redis or Prefect are down),
and it survives ``kill -9``: the next intake on the same state dir dispatches what was left.
Replicas keep their own outbox (their own state dir); Prefect's idempotency keys still
make the same alert through two intakes one incident. Two intakes sharing one state dir
is safe for the same reason, but both dispatch what they find (the work is done twice).

Row states: ``pending`` → ``done`` (an incident started or found) or ``absorbed`` (joined
an open incident's cause) → ``closed`` (the absorbed alert resolved, or its cause ended
and it was dispatched on its own). ``done``/``closed`` rows are purged after a day::

    box = Outbox(settings.state_dir / "intake" / "outbox.sqlite")
    ids = box.add([(alert.model_dump_json(), alert.priority, False, alert.fingerprint)])
    for row in box.due(limit=100): ...
"""

from __future__ import annotations

import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS alerts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    received REAL NOT NULL,
    priority INTEGER NOT NULL,
    join_open INTEGER NOT NULL,
    fingerprint TEXT NOT NULL,
    alert TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    next_try REAL NOT NULL DEFAULT 0,
    run_id TEXT,
    note TEXT NOT NULL DEFAULT '',
    answer TEXT,
    done_at REAL
);
CREATE INDEX IF NOT EXISTS alerts_due ON alerts (state, priority, id);
CREATE INDEX IF NOT EXISTS alerts_fp ON alerts (fingerprint, state);
"""
KEEP_S = 86400.0


@dataclass(frozen=True)
class Row:
    id: int
    received: float
    priority: int
    join_open: bool
    fingerprint: str
    alert: str
    attempts: int
    run_id: str | None = None
    done_at: float | None = None


BUSY_WAIT_S = 5.0
SPIN_S = 0.0005


class Outbox:
    """Thread-safe (one connection, one lock); call it from ``asyncio.to_thread``.

    ``spin``: for the intake's webhook side. The dispatcher's process writes to the same
    file, and SQLite's own busy handler sleeps 1, 2, 5, 10… 100 ms between tries: a post
    that met the dispatcher's commit waited up to 200 ms for its 202. With ``spin`` a
    locked write is tried again every 0.5 ms (up to ``BUSY_WAIT_S``), and this side
    never checkpoints the WAL (the dispatcher's connection does).
    """

    def __init__(self, path: Path, spin: bool = False) -> None:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.path = path
        self.spin = spin
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._lock = threading.Lock()
        with self._lock:
            self._db.execute("PRAGMA busy_timeout=5000")  # the schema: wait like anyone
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")  # the 202 means on disk
            self._db.executescript(SCHEMA)
            if spin:
                self._db.execute("PRAGMA busy_timeout=0")
                self._db.execute("PRAGMA wal_autocheckpoint=0")

    def _rows(self, sql: str, params: tuple[object, ...] = ()) -> list[tuple[Any, ...]]:
        """A read under the lock; with ``spin``, retried while SQLite says locked (rare
        in WAL mode, but this connection has no busy timeout of its own)."""
        deadline = time.monotonic() + BUSY_WAIT_S
        with self._lock:
            while True:
                try:
                    return self._db.execute(sql, params).fetchall()
                except sqlite3.OperationalError as exc:
                    if not self.spin or "locked" not in str(exc) or time.monotonic() > deadline:
                        raise
                time.sleep(SPIN_S)

    def _begin(self, cur: sqlite3.Cursor) -> None:
        """``BEGIN IMMEDIATE``, retried every ``SPIN_S`` while another process writes."""
        deadline = time.monotonic() + BUSY_WAIT_S
        while True:
            try:
                cur.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                if not self.spin or "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
            time.sleep(SPIN_S)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def add(self, rows: list[tuple[str, int, bool, str]]) -> list[int]:
        """Store ``(alert_json, priority, join_open, fingerprint)`` rows in one
        transaction; returns their ids. Raises ``sqlite3.Error`` (disk full…): not stored."""
        now = time.time()
        with self._lock:
            cur = self._db.cursor()
            self._begin(cur)
            try:
                ids = []
                for alert, priority, join_open, fp in rows:
                    cur.execute(
                        "INSERT INTO alerts (received, priority, join_open, fingerprint, alert)"
                        " VALUES (?, ?, ?, ?, ?)",
                        (now, priority, int(join_open), fp, alert),
                    )
                    ids.append(int(cur.lastrowid or 0))
                cur.execute("COMMIT")
            except BaseException:
                cur.execute("ROLLBACK")
                raise
        return ids

    def due(self, limit: int = 200, now: float | None = None) -> list[Row]:
        """Pending rows whose next try is due: most urgent first, then oldest."""
        now = time.time() if now is None else now
        rows = self._rows(
            "SELECT id, received, priority, join_open, fingerprint, alert, attempts"
            " FROM alerts WHERE state = 'pending' AND next_try <= ?"
            " ORDER BY priority, id LIMIT ?",
            (now, limit),
        )
        return [Row(r[0], r[1], r[2], bool(r[3]), r[4], r[5], r[6]) for r in rows]

    def finish(
        self, row_id: int, state: str, run_id: str | None, note: str, answer: str | None = None
    ) -> None:
        """``state``: done, absorbed or closed; ``answer``: the webhook answer's entry for
        the alert (JSON), for a post waiting on it in any process on this outbox."""
        with self._lock:
            self._db.execute(
                "UPDATE alerts SET state = ?, run_id = ?, note = ?, answer = ?, done_at = ?"
                " WHERE id = ?",
                (state, run_id, note[:500], answer, time.time(), row_id),
            )

    def finish_many(self, rows: list[tuple[int, str, str | None, str, str | None]]) -> None:
        """``finish`` for ``(row_id, state, run_id, note, answer)`` rows, in one transaction."""
        now = time.time()
        with self._lock:
            cur = self._db.cursor()
            cur.execute("BEGIN IMMEDIATE")
            try:
                cur.executemany(
                    "UPDATE alerts SET state = ?, run_id = ?, note = ?, answer = ?, done_at = ?"
                    " WHERE id = ?",
                    [(st, run, note[:500], ans, now, rid) for rid, st, run, note, ans in rows],
                )
                cur.execute("COMMIT")
            except BaseException:
                cur.execute("ROLLBACK")
                raise

    def answers(self, row_ids: list[int]) -> dict[int, str]:
        """The answers of those of ``row_ids`` that are dispatched."""
        if not row_ids:
            return {}
        wanted = set(row_ids)
        rows = self._rows(
            "SELECT id, answer FROM alerts WHERE id BETWEEN ? AND ? AND answer IS NOT NULL",
            (min(wanted), max(wanted)),
        )
        return {int(i): str(a) for i, a in rows if i in wanted}

    def retry(self, row_id: int, attempts: int, note: str) -> float:
        """Try again later (backoff 0.5 s doubling to 30 s); returns the delay."""
        delay = min(0.5 * 2 ** min(attempts, 10), 30.0)
        with self._lock:
            self._db.execute(
                "UPDATE alerts SET attempts = ?, next_try = ?, note = ? WHERE id = ?",
                (attempts + 1, time.time() + delay, note[:500], row_id),
            )
        return delay

    def absorbed(self) -> list[Row]:
        """Rows absorbed into an open cause (to release if the cause ends first)."""
        rows = self._rows(
            "SELECT id, received, priority, join_open, fingerprint, alert, attempts,"
            " run_id, done_at FROM alerts WHERE state = 'absorbed' ORDER BY id"
        )
        return [Row(r[0], r[1], r[2], bool(r[3]), r[4], r[5], r[6], r[7], r[8]) for r in rows]

    def close_absorbed(self, fingerprint: str, note: str) -> int:
        """An absorbed alert resolved: it is closed with nothing started."""
        with self._lock:
            cur = self._db.execute(
                "UPDATE alerts SET state = 'closed', note = ?, done_at = ?"
                " WHERE fingerprint = ? AND state = 'absorbed'",
                (note[:500], time.time(), fingerprint),
            )
            return cur.rowcount

    def requeue(self, row_id: int, note: str) -> None:
        """Dispatch an absorbed alert on its own (its cause ended, it still fires)."""
        with self._lock:
            self._db.execute(
                "UPDATE alerts SET state = 'pending', next_try = 0, join_open = 0, note = ?"
                " WHERE id = ? AND state = 'absorbed'",
                (note[:500], row_id),
            )

    def dispatched_since(self, after: float) -> list[tuple[float, float]]:
        """``(done_at, seconds from stored to dispatched)`` of the rows dispatched (done
        or absorbed) after ``after``, oldest first."""
        rows = self._rows(
            "SELECT done_at, done_at - received FROM alerts"
            " WHERE done_at > ? AND state IN ('done', 'absorbed') ORDER BY done_at LIMIT 100000",
            (after,),
        )
        return [(float(d), float(s)) for d, s in rows]

    def depth(self) -> int:
        """Alerts stored and not yet turned into (or joined to) an incident."""
        return int(self._rows("SELECT count(*) FROM alerts WHERE state = 'pending'")[0][0])

    def counts(self) -> dict[str, int]:
        rows = self._rows("SELECT state, count(*) FROM alerts GROUP BY state")
        return {str(state): int(n) for state, n in rows}

    def result(self, row_id: int) -> tuple[str, str | None, str]:
        """``(state, run_id, note)`` of a row."""
        rows = self._rows("SELECT state, run_id, note FROM alerts WHERE id = ?", (row_id,))
        return (rows[0][0], rows[0][1], rows[0][2]) if rows else ("unknown", None, "")

    def purge(self, keep_s: float = KEEP_S) -> int:
        with self._lock:
            cur = self._db.execute(
                "DELETE FROM alerts WHERE state IN ('done', 'closed') AND done_at < ?",
                (time.time() - keep_s,),
            )
            return cur.rowcount
