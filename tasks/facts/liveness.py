"""Is an incident's process alive? Read from Prefect, never from a local pid.

Flow runs emit Prefect's own heartbeat events (``prefect.flow-run.heartbeat``, every
``PREFECT_FLOWS_HEARTBEAT_FREQUENCY`` seconds — 30 s, Prefect's minimum — set on every
deployment by contingency/runtime/deploy.py) and an incident also beats on its own every 10 s
(:class:`Beat`). A run in a non-final state whose last beat of either kind, and last
state change, are older than ``dead_after_s`` has no live owner. Any replica of any
component reads the same answer.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

HEARTBEAT_EVENT = "prefect.flow-run.heartbeat"
ALIVE_EVENT = "contingency.incident.alive"
HEARTBEAT_S = 30
ALIVE_S = 10.0
DEAD_AFTER_S = 45.0
"""No beat for this long: four missed ``ALIVE_S`` beats plus the event pipeline's delay
(the server persists events in batches every 5 s)."""


class Beat:
    """The incident's own liveness beat: a daemon thread that POSTs a
    ``contingency.incident.alive`` event about this flow run every ``ALIVE_S`` seconds
    over plain REST (``POST /api/events``).

    Why besides Prefect's heartbeat: Prefect's minimum period is 30 s, and in a run
    forked by the fork server only its first heartbeat reached the server (seen with
    Prefect 3.9.1); a REST call per beat does not depend on a websocket that a fork may
    have broken. Either event proves the run alive."""

    def __init__(self, run_id: object, period_s: float = ALIVE_S) -> None:
        import contextvars
        import threading

        self.run_id = str(run_id)
        self.period_s = period_s
        self._stop = threading.Event()
        ctx = contextvars.copy_context()  # the run's Prefect settings (API URL, auth)
        self._thread = threading.Thread(
            target=ctx.run, args=(self._loop,), name="incident-beat", daemon=True
        )

    def __enter__(self) -> Beat:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()

    def _loop(self) -> None:
        from uuid import uuid4

        from tasks.prefect_api import get_client

        while True:
            event = {
                "id": str(uuid4()),
                "occurred": datetime.now(UTC).isoformat(),
                "event": ALIVE_EVENT,
                "resource": {"prefect.resource.id": f"prefect.flow-run.{self.run_id}"},
            }
            try:
                with get_client(sync_client=True) as client:
                    client.request("POST", "/events", json=[event])  # type: ignore[arg-type]
            except Exception:  # noqa: BLE001, S110 - the API may be restarting
                pass
            if self._stop.wait(self.period_s):
                return


def heartbeats_since(client: Any, run_ids: Iterable[object], since: datetime) -> set[str]:
    """Ids (str) of the runs among ``run_ids`` that sent a heartbeat after ``since``."""
    from prefect.events.filters import (
        EventFilter,
        EventNameFilter,
        EventOccurredFilter,
        EventResourceFilter,
    )

    ids = [f"prefect.flow-run.{r}" for r in run_ids]
    if not ids:
        return set()
    seen: set[str] = set()
    until = datetime.now(UTC) + timedelta(minutes=5)
    for start in range(0, len(ids), 50):
        page = client.read_events(
            EventFilter(
                occurred=EventOccurredFilter(since=since, until=until),
                event=EventNameFilter(name=[HEARTBEAT_EVENT, ALIVE_EVENT]),
                # one (the latest) event per run
                resource=EventResourceFilter(id=ids[start : start + 50], distinct=True),
            ),
            limit=50,
        )
        while True:
            seen.update(e.resource.id.removeprefix("prefect.flow-run.") for e in page.events)
            if not page.next_page or len(seen) >= len(ids):
                break
            page = client.read_events_page(page.next_page)
    return seen


def last_change(run: Any) -> datetime | None:
    """When the run last changed state (or started)."""
    stamps = [t for t in (run.state.timestamp if run.state else None, run.start_time) if t]
    return max(stamps) if stamps else None


def dead_runs(client: Any, runs: list[Any], dead_after_s: float = DEAD_AFTER_S) -> list[Any]:
    """The non-final runs among ``runs`` whose owner is gone (see the module docstring)."""
    now = datetime.now(UTC)
    since = now - timedelta(seconds=dead_after_s)
    candidates = [
        r
        for r in runs
        if r.state is not None
        and not r.state.is_final()
        and (changed := last_change(r)) is not None
        and changed < since
    ]
    if not candidates:
        return []
    alive = heartbeats_since(client, [r.id for r in candidates], since)
    return [r for r in candidates if str(r.id) not in alive]


def is_alive(client: Any, run: Any, dead_after_s: float = DEAD_AFTER_S) -> bool:
    """A non-final run with a live owner (see :func:`dead_runs`)."""
    if run.state is None or run.state.is_final():
        return False
    return not dead_runs(client, [run], dead_after_s)
