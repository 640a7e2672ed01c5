"""Reviews (validation, rendering) and stats (aggregation, records from typed summaries)
— pure parts."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest
import typer
from prefect.states import Completed, Crashed, Failed, Running, State

from contingency.cli.review import _follow_up
from contingency.cli.stats import Record, aggregate, parse_since, record
from inventory.loader import load_inventory
from inventory.outcomes import Outcome
from tasks.report.review import FollowUp, ReviewInput, problems, render_review
from tasks.report.summary import IncidentSummary

INV = load_inventory("inventory/examples/lab")
T0 = datetime(2026, 11, 1, tzinfo=UTC)


def _rec(
    i: int, plan: str, ok: bool, ttr: float | None, fp: str, outcome: str = "recovered"
) -> Record:
    return Record(
        run_id=str(i), plan=plan, started=T0 + timedelta(minutes=i), ok=ok,
        outcome=Outcome(outcome), fingerprint=fp, recover_s=ttr,
    )  # fmt: skip


def test_aggregate_per_plan() -> None:
    records = [
        _rec(1, "software_crash", True, 10.0, "a"),
        _rec(2, "software_crash", True, 20.0, "a"),  # a repeat of alert a
        _rec(3, "software_crash", False, None, "b", "not_approved").model_copy(
            update={"gates_expired": 1}
        ),
        _rec(4, "software_crash", True, 40.0, "c"),
        _rec(5, "data_loss", True, 100.0, "d"),
    ]
    by = {s.plan: s for s in aggregate(records)}
    sc = by["software_crash"]
    assert (sc.incidents, sc.success_rate, sc.repeats, sc.gates_timed_out) == (4, 0.75, 1, 1)
    assert (sc.ttr_median_s, sc.ttr_p90_s) == (20.0, 40.0)
    assert by["data_loss"].ttr_median_s == 100.0 and by["data_loss"].repeats == 0


def test_parse_since() -> None:
    assert parse_since("7d", T0) == T0 - timedelta(days=7)
    assert parse_since("2026-10-01") == datetime(2026, 10, 1, tzinfo=UTC)
    with pytest.raises(ValueError, match="expected 7d"):
        parse_since("last week")


def test_review_owners_must_be_people_and_render() -> None:
    review = ReviewInput(
        reviewer="zhang.wei", category="software", root_cause="OOM after deploy",
        went_well="restart in 40 s", went_badly="two pages",
        actions=[FollowUp(action="raise limit", owner="ghost", due=date(2026, 12, 1))],
    )  # fmt: skip
    bad = problems(review, INV)
    assert bad[0] == "action 1: owner 'ghost' is not a person in the inventory"
    assert bad[1].startswith("people: ") and "wang.fang" in bad[1]
    ok = review.model_copy(update={"actions": [review.actions[0].model_copy(
        update={"owner": "wang.fang"})]})  # fmt: skip
    assert problems(ok, INV) == []
    text = render_review(ok)
    assert "**root cause** (software): OOM after deploy" in text
    assert "| 1 | raise limit | wang.fang | 2026-12-01 |" in text


def test_cli_follow_up_parsing() -> None:
    assert _follow_up("fix it|li.na|2026-12-24").owner == "li.na"
    with pytest.raises(typer.BadParameter, match="bad due date"):
        _follow_up("fix it|li.na|someday")
    with pytest.raises(typer.BadParameter, match="expected"):
        _follow_up("fix it")


def test_p90_is_nearest_rank_and_expired_gates_are_summed() -> None:
    records = [_rec(i, "p", True, float(i), f"f{i}") for i in range(1, 11)]
    records[0] = records[0].model_copy(update={"gates_expired": 2})
    [st] = aggregate(records)
    assert (st.ttr_median_s, st.ttr_p90_s, st.gates_timed_out) == (5.5, 9.0, 2)
    [one] = aggregate([_rec(1, "p", False, None, "x")])
    assert (one.success_rate, one.ttr_median_s, one.ttr_p90_s) == (0.0, None, None)


def _run(state: State[Any], *tags: str, **params: object) -> SimpleNamespace:
    return SimpleNamespace(
        id="r1", state=state, start_time=T0, parameters=params,
        tags=["incident", "fingerprint:fp1", *tags],
    )  # fmt: skip


def test_a_record_comes_from_the_summary_not_from_the_state() -> None:
    summary = IncidentSummary(
        run_id="r1", plan="software_crash", outcome=Outcome.not_approved,
        gates=["expired", "approved", "expired"], drill=True,
    )  # fmt: skip
    # the summary decides even where the state would say otherwise
    rec = record(_run(Completed(), "plan:other"), summary)
    assert rec is not None
    assert (rec.plan, rec.ok, rec.outcome, rec.gates_expired, rec.drill) == (
        "software_crash", False, Outcome.not_approved, 2, True,
    )  # fmt: skip
    assert rec.recover_s is None and rec.fingerprint == "fp1"
    done = summary.model_copy(update={"outcome": Outcome.restored, "recover_s": 12.5})
    rec = record(_run(Failed(name="Escalated")), done)
    assert rec is not None and (rec.ok, rec.recover_s) == (True, 12.5)


def test_a_run_without_a_summary_counts_from_its_state() -> None:
    crashed = record(_run(Crashed(), "plan:data_loss"), None)
    assert crashed is not None
    assert (crashed.plan, crashed.ok, crashed.outcome) == ("data_loss", False, Outcome.crashed)
    cut = record(_run(Crashed(name="Interrupted")), None)
    assert cut is not None and (cut.plan, cut.outcome) == ("unroutable", Outcome.interrupted)
    old = record(_run(Completed(), "drill"), None)
    assert old is not None and old.ok and old.drill and old.gates_expired == 0


def test_dry_runs_and_unfinished_runs_are_no_records() -> None:
    summary = IncidentSummary(run_id="r1", outcome=Outcome.dry_run, dry_run=True)
    assert record(_run(Completed()), summary) is None
    assert record(_run(Completed(), dry_run=True), None) is None
    assert record(_run(Running()), None) is None


def test_drill_trends_count_passes_and_mark_each_run_oldest_first() -> None:
    from contingency.cli.stats import drill_trends

    rows = [  # newest first, as read from the artifacts
        ["game-day-link-cut-uplink-a", "2026-12-04 10:00 UTC", "pass", "detect 1.2s"],
        ["drill-report-db", "2026-12-03 03:00 UTC", "pass", "ok"],
        ["game-day-link-cut-uplink-a", "2026-11-27 10:00 UTC", "partial", "late"],
        ["drill-report-db", "2026-12-02 03:00 UTC", "FAIL", "checksum"],
        ["game-day-link-cut-uplink-a", "2026-11-20 10:00 UTC", "fail", "not recovered"],
    ]
    trends = {t.drill: t for t in drill_trends(rows)}
    link = trends["game-day-link-cut-uplink-a"]
    assert (link.runs, link.passed, link.latest, link.history) == (3, 1, "pass", "-~+")
    db = trends["drill-report-db"]
    assert (db.runs, db.passed, db.latest, db.history) == (2, 1, "pass", "-+")
    assert drill_trends([]) == []
