"""The outcome metrics without a server: labels from tags and typed summaries (or the
final state), the time a run spent Paused from its state history, and one refresh over a
fake async client whose summaries disagree with everything else."""

import asyncio
import json
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any
from uuid import uuid4

from prefect.client.schemas.objects import StateType
from prefect.states import Completed, Crashed, Failed

from contingency.intake.metrics import IntakeMetrics
from contingency.intake.outcomes import (
    IncidentOutcomes,
    gate_decision,
    paused_seconds,
    plan_label,
    run_outcome,
)
from inventory.outcomes import Outcome
from tasks.report.summary import IncidentSummary, summary_key


def test_plan_label_from_the_runs_tags() -> None:
    assert plan_label(["incident", "plan:data_loss", "target:x"]) == "data_loss"
    assert plan_label(["incident", "source:generic"]) == "unroutable"


def test_outcome_from_the_summary_else_the_final_state() -> None:
    summary = IncidentSummary(run_id="r", outcome=Outcome.not_approved)
    assert run_outcome(Completed(), summary) is Outcome.not_approved
    assert run_outcome(Crashed(), None) is Outcome.crashed
    assert run_outcome(Crashed(name="Interrupted"), None) is Outcome.interrupted
    assert run_outcome(Failed(name="Escalated"), None) is Outcome.failed  # no such outcome


def test_gate_decision_from_the_summary_then_the_outcome() -> None:
    def facts(outcome: Outcome, *gates: str) -> IncidentSummary:
        return IncidentSummary(run_id="r", outcome=outcome, gates=list(gates))

    assert gate_decision(Outcome.recovered, facts(Outcome.recovered, "approved")) == "approved"
    assert gate_decision(Outcome.not_approved, facts(Outcome.not_approved, "expired")) == (
        "not_approved"
    )
    assert gate_decision(Outcome.rejected, facts(Outcome.rejected, "rejected")) == "rejected"
    # approved, then nothing ran (e.g. not confirmed any more): the gate was approved
    assert gate_decision(Outcome.not_confirmed, facts(Outcome.not_confirmed, "approved")) == (
        "approved"
    )
    assert gate_decision(Outcome.interrupted, None) == "interrupted"  # died at its gate
    assert gate_decision(Outcome.crashed, None) == "approved"  # it acted: it was approved


def test_paused_seconds_sums_every_pause_in_any_order() -> None:
    t0 = datetime(2026, 1, 1, tzinfo=UTC)

    def st(kind: StateType, s: float) -> SimpleNamespace:
        return SimpleNamespace(type=kind, timestamp=t0 + timedelta(seconds=s))

    states = [
        st(StateType.COMPLETED, 100),
        st(StateType.RUNNING, 0),
        st(StateType.PAUSED, 10),
        st(StateType.RUNNING, 40),
        st(StateType.PAUSED, 50),
        st(StateType.RUNNING, 55),
    ]
    assert paused_seconds(states) == 35
    assert paused_seconds([st(StateType.RUNNING, 0)]) == 0


class _FakeClient:
    """The two reads ``IncidentOutcomes`` makes besides the runs: artifacts, states."""

    def __init__(self, artifacts: list[Any], states: list[Any]) -> None:
        self.artifacts, self.states, self.filters = artifacts, states, []

    async def read_artifacts(self, **kwargs: Any) -> list[Any]:
        keys = kwargs["artifact_filter"].key.any_
        self.filters.append(keys)
        return [a for a in self.artifacts if a.key in keys]

    async def read_flow_run_states(self, run_id: Any) -> list[Any]:
        return self.states


def test_refresh_counts_the_summary_and_never_the_report() -> None:
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    gated, old = uuid4(), uuid4()

    def run(rid: Any, state: Any, plan: str, ran_s: float, wall_s: float) -> Any:
        return SimpleNamespace(
            id=rid, state=state, tags=["incident", f"plan:{plan}"], start_time=t0,
            end_time=t0 + timedelta(seconds=wall_s), total_run_time=timedelta(seconds=ran_s),
        )  # fmt: skip

    facts = IncidentSummary(
        run_id=str(gated), plan="software_crash", outcome=Outcome.not_approved,
        gates=["expired"],
    )  # fmt: skip
    artifacts = [
        # the markdown report says something else entirely: it must not be read
        SimpleNamespace(key=f"incident-{gated}", data="# garbled", description="recovered: x"),
        SimpleNamespace(key=summary_key(str(gated)), data=json.dumps([facts.row()])),
    ]
    states = [
        SimpleNamespace(type=StateType.RUNNING, timestamp=t0),
        SimpleNamespace(type=StateType.PAUSED, timestamp=t0 + timedelta(seconds=1)),
        SimpleNamespace(type=StateType.RUNNING, timestamp=t0 + timedelta(seconds=31)),
        SimpleNamespace(type=StateType.FAILED, timestamp=t0 + timedelta(seconds=32)),
    ]
    client = _FakeClient(artifacts, states)
    metrics = IntakeMetrics()
    runs = [
        run(gated, Failed(name="Escalated"), "software_crash", 2, 32),
        run(old, Completed(), "data_loss", 5, 5),  # no summary: from its state
    ]
    asyncio.run(IncidentOutcomes(metrics)._record(client, runs))  # type: ignore[arg-type]
    text = metrics.render().decode()
    assert (
        'contingency_incidents_outcome_total{outcome="not_approved",plan="software_crash"} 1.0'
        in text
    )
    assert 'contingency_incidents_outcome_total{outcome="failed",plan="data_loss"} 1.0' in text
    assert 'outcome="recovered"' not in text
    assert (
        'contingency_gate_wait_seconds_sum{decision="not_approved",plan="software_crash"} 30.0'
        in text
    )
    assert client.filters == [[summary_key(str(gated)), summary_key(str(old))]]
