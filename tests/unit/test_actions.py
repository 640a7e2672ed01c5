"""Tracked follow-up actions: overdue, reminders once a day, stable ids."""

from __future__ import annotations

from datetime import date

from tasks.report.actions import ActionState, TrackedAction, action_id

TODAY = date(2026, 12, 7)


def _action(due: date, **kw: object) -> TrackedAction:
    return TrackedAction(id="x", run_id="r", action="a", owner="o", due=due, **kw)  # type: ignore[arg-type]


def test_overdue_and_reminders() -> None:
    assert _action(date(2026, 12, 6)).overdue(TODAY)
    assert not _action(TODAY).overdue(TODAY)
    assert not _action(date(2026, 12, 1), state=ActionState.done).overdue(TODAY)
    assert _action(date(2026, 12, 8)).needs_reminder(TODAY)  # due tomorrow
    assert not _action(date(2026, 12, 9)).needs_reminder(TODAY)
    assert not _action(date(2026, 12, 1), reminded=TODAY).needs_reminder(TODAY)
    assert _action(date(2026, 12, 1), reminded=date(2026, 12, 6)).needs_reminder(TODAY)
    assert not _action(date(2026, 12, 1), state=ActionState.dropped).needs_reminder(TODAY)


def test_ids_are_stable_per_follow_up_and_distinct_between_them() -> None:
    run = "6b389405-c25b-4788-a6b6-bf4afe1fadb4"
    one = action_id(run, "fix", "li.na", TODAY)
    assert one == action_id(run, "fix", "li.na", TODAY) and one.startswith("6b389405c25b-")
    assert one != action_id(run, "fix", "li.na", date(2026, 12, 8))
    assert one != action_id(run, "fix", "wang.fang", TODAY)
