"""Incident outcomes and durations for ``/metrics``, read from Prefect (the system of record).

Flow runs do not report to the intake; instead, when ``/metrics`` is scraped and the last
read is older than ``refresh_s``, the intake reads the incident runs that finished since
then (one paged query, plus the state history of the few runs that waited at a gate) and
feeds ``IntakeMetrics``::

    outcomes = IncidentOutcomes(metrics)
    await outcomes.refresh(client)      # in the /metrics handler; cheap when fresh

- ``contingency_incidents_outcome_total{plan,outcome}``: ``plan`` from the run's
  ``plan:<name>`` tag (``unroutable`` without one); ``outcome`` (an ``Outcome``:
  ``recovered``, ``not_approved`` ...) from the run's typed summary
  (tasks/report/summary.py), or, for a run without one (older, or it died before
  writing it), from its final state: ``interrupted``, ``crashed``, else ``Outcome.parse``
  of the state's name. The report written for people is never parsed.
- ``contingency_remediation_duration_seconds{plan}``: the run's time in Running (Prefect's
  ``total_run_time``; gate waits excluded).
- ``contingency_gate_wait_seconds{plan,decision}``: time spent Paused; ``decision`` is
  ``approved`` if the summary says the last gate was approved, else the outcome when
  nothing ran (``NEVER_RAN``: ``not_approved``, ``rejected``, ``cleared``,
  ``interrupted`` ...), else ``approved``.

Each replica counts every finished incident once (from the start of history at its first
scrape), so replicas agree; a run whose end time is older than the last read but that
reached the API later is missed (best effort).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from prefect.client.orchestration import PrefectClient
from prefect.client.schemas.filters import (
    FlowRunFilter,
    FlowRunFilterEndTime,
    FlowRunFilterState,
    FlowRunFilterStateType,
    FlowRunFilterTags,
)
from prefect.client.schemas.objects import FlowRun, StateType
from prefect.client.schemas.sorting import FlowRunSort

from contingency.intake.metrics import IntakeMetrics
from inventory.outcomes import NEVER_RAN, Outcome
from tasks.report.summary import IncidentSummary, aread_summaries, state_outcome

FINAL = [StateType.COMPLETED, StateType.FAILED, StateType.CRASHED, StateType.CANCELLED]
PAGE = 200


def plan_label(tags: Sequence[str]) -> str:
    return next((t.removeprefix("plan:") for t in tags if t.startswith("plan:")), "unroutable")


def run_outcome(state: Any, summary: IncidentSummary | None) -> Outcome:
    """The summary's outcome; without a summary, the one the final state implies."""
    return summary.outcome if summary is not None else state_outcome(state)


def gate_decision(outcome: Outcome, summary: IncidentSummary | None) -> str:
    """How the wait at the gate(s) ended, for ``contingency_gate_wait_seconds``."""
    if summary is not None and summary.gates and summary.gates[-1] == "approved":
        return "approved"
    return outcome.value if outcome in NEVER_RAN else "approved"


def paused_seconds(states: Sequence[Any]) -> float:
    """Seconds between entering a Paused state and the next state (states in any order)."""
    ordered = sorted(states, key=lambda s: s.timestamp)
    return sum(
        (nxt.timestamp - cur.timestamp).total_seconds()
        for cur, nxt in zip(ordered, ordered[1:], strict=False)
        if cur.type == StateType.PAUSED
    )


class IncidentOutcomes:
    def __init__(self, metrics: IntakeMetrics, refresh_s: float = 15.0) -> None:
        self.metrics = metrics
        self.refresh_s = refresh_s
        self._read_at = float("-inf")
        self._since: datetime | None = None
        self._edge: set[UUID] = set()  # runs already counted that ended exactly at _since
        self._lock = asyncio.Lock()

    async def refresh(self, client: PrefectClient, now: float | None = None) -> int:
        """Count the incident runs finished since the last read; returns how many."""
        now = time.monotonic() if now is None else now
        async with self._lock:
            if now - self._read_at < self.refresh_s:
                return 0
            runs = await self._finished_since(client)
            fresh = [r for r in runs if r.id not in self._edge and r.end_time is not None]
            if fresh:
                await self._record(client, fresh)
                latest = max(r.end_time for r in fresh if r.end_time is not None)
                if latest != self._since:
                    self._since, self._edge = latest, set()
                self._edge |= {r.id for r in fresh if r.end_time == latest}
            self._read_at = now
            return len(fresh)

    async def _finished_since(self, client: PrefectClient) -> list[FlowRun]:
        flt = FlowRunFilter(
            tags=FlowRunFilterTags(all_=["incident"]),
            state=FlowRunFilterState(type=FlowRunFilterStateType(any_=FINAL)),
            end_time=FlowRunFilterEndTime(after_=self._since) if self._since else None,
        )
        found: dict[UUID, FlowRun] = {}
        offset = 0
        while True:
            page = await client.read_flow_runs(
                flow_run_filter=flt, sort=FlowRunSort.END_TIME_DESC, limit=PAGE, offset=offset
            )
            found.update((r.id, r) for r in page)
            if len(page) < PAGE:
                return list(found.values())
            offset += PAGE

    async def _record(self, client: PrefectClient, runs: list[FlowRun]) -> None:
        summaries = await aread_summaries(client, [str(r.id) for r in runs])
        for run in runs:
            plan = plan_label(run.tags)
            summary = summaries.get(str(run.id))
            outcome = run_outcome(run.state, summary)
            self.metrics.incident_outcome(plan, outcome.value)
            level = next((t[9:] for t in run.tags if t.startswith("severity:")), "")
            if level:
                self.metrics.by_severity.labels(severity=level).inc()
            if plan != "unroutable":
                self.metrics.observe_remediation(plan, run.total_run_time.total_seconds())
            ended, started = run.end_time, run.start_time
            wall = (ended - started).total_seconds() if ended and started else 0.0
            if wall - run.total_run_time.total_seconds() > 1.0:  # it waited somewhere
                waited = paused_seconds(await client.read_flow_run_states(run.id))
                if waited > 0:
                    decision = gate_decision(outcome, summary)
                    self.metrics.observe_gate_wait(plan, decision, waited)
