"""Training records, pure: who is due, what a session may name."""

from __future__ import annotations

from datetime import date

from tasks.report.training import TrainingSession, due, problems, session_id


def _s(kind: str, when: date, *people: str) -> TrainingSession:
    return TrainingSession(
        id=session_id(kind, "t", when, "li.na"), kind=kind,  # type: ignore[arg-type]
        topic="failover drill", date=when, trainer="li.na", attendees=list(people),
    )  # fmt: skip


def test_due_is_never_or_older_than_the_window_per_kind() -> None:
    today = date(2026, 12, 7)
    sessions = [
        _s("training", date(2026, 6, 1), "a", "b"),
        _s("drill", date(2025, 1, 1), "a"),
        _s("drill", date(2026, 11, 1), "b"),
    ]
    rows = {r.person: r for r in due(["a", "b", "c"], sessions, today, 365)}
    assert not rows["a"].training_due and rows["a"].drill_due  # drilled 2025-01-01: too long
    assert not rows["b"].training_due and not rows["b"].drill_due
    assert rows["c"].training_due and rows["c"].drill_due and rows["c"].last_training is None
    assert rows["a"].last_drill == date(2025, 1, 1)


def test_a_session_names_people_of_the_inventory_and_an_http_link() -> None:
    bad = _s("training", date(2026, 1, 1), "a", "ghost")
    bad.material = "file:///etc/passwd"
    said = problems(bad, {"a", "li.na"})
    assert "attendees not in the inventory: ghost" in said[0] and "http(s) link" in said[1]
    assert problems(_s("drill", date(2026, 1, 1), "a"), {"a", "li.na"}) == []
