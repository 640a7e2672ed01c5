"""`contingency stats`: per plan — incidents, success rate, median and p90 time to
recover, repeat alerts, gates timed out — from the incident runs in Prefect and their
typed summaries (tasks/report/summary.py: the outcome, the incident clocks and how each
gate ended). The report written for people is never parsed here.

The aggregation is pure (:func:`aggregate` over :class:`Record`); :func:`collect` reads
the API (:func:`record` turns one run and its summary into a record); :func:`plot` draws
time to recover over time per plan (PNG, matplotlib Agg).
"""

from __future__ import annotations

import math
import re
import statistics
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from inventory.outcomes import Outcome
from tasks.report.summary import IncidentSummary, state_outcome


class Record(BaseModel):
    run_id: str
    plan: str
    started: datetime
    ok: bool
    outcome: Outcome
    fingerprint: str = ""
    recover_s: float | None = None
    drill: bool = False
    gates_expired: int = 0
    """Sign-off gates of this incident that closed because nobody decided in time."""
    severity: str = ""


class PlanStats(BaseModel):
    plan: str
    incidents: int
    success_rate: float
    ttr_median_s: float | None
    ttr_p90_s: float | None
    repeats: int
    gates_timed_out: int
    drills: int
    by_severity: dict[str, int] = {}
    """Incidents per severity level ("" for runs older than levels)."""


def parse_since(text: str, now: datetime | None = None) -> datetime:
    """``7d``, ``12h``, ``30m`` before now, or an ISO date/time (UTC unless given).

    >>> parse_since("2d", datetime(2026, 11, 3, tzinfo=UTC)).day
    1
    """
    now = now or datetime.now(UTC)
    if m := re.fullmatch(r"(\d+)([dhm])", text.strip()):
        unit = {"d": "days", "h": "hours", "m": "minutes"}[m.group(2)]
        return now - timedelta(**{unit: int(m.group(1))})
    try:
        at = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(
            f"--since: expected 7d, 12h, 30m or an ISO date, got {text[:40]!r}"
        ) from None
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def _p90(values: list[float]) -> float:
    """Nearest-rank 90th percentile: the smallest value with 90 % of values at or below."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.9 * len(ordered)) - 1)]


def aggregate(records: list[Record]) -> list[PlanStats]:
    """Per-plan figures, plans sorted by name. Pure."""
    seen: set[str] = set()
    repeats: dict[str, int] = {}
    for r in sorted(records, key=lambda r: r.started):
        if r.fingerprint and r.fingerprint in seen:
            repeats[r.plan] = repeats.get(r.plan, 0) + 1
        seen.add(r.fingerprint)
    out = []
    for plan in sorted({r.plan for r in records}):
        rs = [r for r in records if r.plan == plan]
        ttr = [r.recover_s for r in rs if r.recover_s is not None]
        out.append(
            PlanStats(
                plan=plan,
                incidents=len(rs),
                success_rate=sum(r.ok for r in rs) / len(rs),
                ttr_median_s=statistics.median(ttr) if ttr else None,
                ttr_p90_s=_p90(ttr) if ttr else None,
                repeats=repeats.get(plan, 0),
                gates_timed_out=sum(r.gates_expired for r in rs),
                drills=sum(r.drill for r in rs),
                by_severity=dict(sorted(Counter(r.severity for r in rs).items())),
            )
        )
    return out


def _tag(tags: list[str], prefix: str) -> str:
    return next((t[len(prefix) :] for t in tags if t.startswith(prefix)), "")


def record(run: Any, summary: IncidentSummary | None) -> Record | None:
    """One finished incident run as a record, from its summary; ``None`` for a run that
    is not final or was a dry run. A run without a summary (older than summaries, or it
    died before writing one) counts from its final state: ok if Completed, the outcome
    from the state's name (``crashed`` for a crash)."""
    if run.state is None or not run.state.is_final() or run.start_time is None:
        return None
    if (run.parameters or {}).get("dry_run") or (summary is not None and summary.dry_run):
        return None  # `contingency plan --dry-run`: not an incident
    tags = list(run.tags)
    base = {
        "run_id": str(run.id),
        "started": run.start_time,
        "fingerprint": _tag(tags, "fingerprint:"),
    }
    if summary is None:
        return Record(
            **base,
            plan=_tag(tags, "plan:") or "unroutable",
            ok=run.state.is_completed(),
            outcome=state_outcome(run.state),
            drill="drill" in tags,
            severity=_tag(tags, "severity:"),
        )
    return Record(
        **base,
        plan=summary.plan or _tag(tags, "plan:") or "unroutable",
        ok=summary.ok,
        outcome=summary.outcome,
        recover_s=summary.recover_s,
        drill=summary.drill or "drill" in tags,
        gates_expired=summary.gates_expired,
        severity=summary.severity or _tag(tags, "severity:"),
    )


def collect(since: datetime, limit: int = 5000) -> list[Record]:
    """Incident runs started since ``since`` (dry runs left out), with outcome, time to
    recover and expired gates read from each run's summary."""
    from prefect.client.schemas.filters import (
        FlowFilter,
        FlowFilterName,
        FlowRunFilter,
        FlowRunFilterStartTime,
    )

    from tasks.prefect_api import get_client
    from tasks.report.summary import read_summaries

    with get_client(sync_client=True) as client:
        runs: list = []  # type: ignore[type-arg]
        while len(runs) < limit:  # the API pages at most 200 runs per call
            page = client.read_flow_runs(
                flow_filter=FlowFilter(name=FlowFilterName(any_=["incident"])),
                flow_run_filter=FlowRunFilter(start_time=FlowRunFilterStartTime(after_=since)),
                limit=200,
                offset=len(runs),
            )
            runs += page
            if len(page) < 200:
                break
        final = [r for r in runs if r.state is not None and r.state.is_final()]
        summaries = read_summaries(client, [str(r.id) for r in final])
    records = (record(r, summaries.get(str(r.id))) for r in final)
    return [r for r in records if r is not None]


class DrillTrend(BaseModel):
    """One drill's (restore drill of a dataset, or game day of a scenario and target)
    results over time."""

    drill: str
    runs: int
    passed: int
    latest: str
    history: str
    """Oldest to newest, one mark a run: ``+`` pass, ``~`` partial, ``-`` fail."""


def drill_trends(rows: list[list[str]]) -> list[DrillTrend]:
    """Per drill, from rows ``(drill, when, result, detail)`` newest first (what
    ``plandoc.latest_drill_results`` reads): runs, passes, the latest result, the marks."""
    results: dict[str, list[str]] = {}
    for drill, _when, result, _detail in rows:
        results.setdefault(drill, []).append(result.strip().lower())
    marks = {"pass": "+", "partial": "~"}
    return [
        DrillTrend(drill=drill, runs=len(rs), passed=sum(r == "pass" for r in rs), latest=rs[0],
                   history="".join(marks.get(r, "-") for r in reversed(rs[:20])))
        for drill, rs in sorted(results.items())
    ]  # fmt: skip


def plot(records: list[Record], path: Path) -> int:
    """Time to recover over time, one series per plan; returns the points drawn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4), dpi=100)
    points = 0
    for plan in sorted({r.plan for r in records}):
        rs = sorted((r for r in records if r.plan == plan and r.recover_s is not None),
                    key=lambda r: r.started)  # fmt: skip
        if rs:
            xs = [r.started for r in rs]
            ys = [r.recover_s for r in rs if r.recover_s is not None]  # all of rs
            # matplotlib plots datetimes (its date units); its stubs take only numbers
            ax.plot(xs, ys, marker="o", label=plan)  # type: ignore[arg-type]
            points += len(rs)
    ax.set_title("Time to recover per incident")
    ax.set_ylabel("seconds")
    ax.set_xlabel("incident start (UTC)")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    if points:
        ax.legend()
    fig.autofmt_xdate()
    fig.tight_layout()
    fig.savefig(path, format="png")
    plt.close(fig)
    return points
