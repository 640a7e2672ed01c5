"""Pure parts of the outcome metrics: labels from tags and report descriptions, and the
time a run spent Paused from its state history."""

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

from prefect.client.schemas.objects import StateType

from contingency.intake.outcomes import outcome_label, paused_seconds, plan_label


def test_plan_label_from_the_runs_tags() -> None:
    assert plan_label(["incident", "plan:data_loss", "target:x"]) == "data_loss"
    assert plan_label(["incident", "source:generic"]) == "unroutable"


def test_outcome_label_from_the_report_description_else_the_state() -> None:
    assert outcome_label("Completed", "recovered: web answers again") == "recovered"
    assert outcome_label("Escalated", "not_approved: nobody answered") == "not_approved"
    assert outcome_label("Crashed", None) == "crashed"
    assert outcome_label("Completed", "Free text: with a colon") == "completed"


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
