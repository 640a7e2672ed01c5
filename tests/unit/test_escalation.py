"""The acknowledgement ladder, pure: due steps, who each step pages, the report section."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from types import SimpleNamespace

import pytest

from inventory.duty import Roster
from inventory.models import Inventory, Person, RoleName
from tasks.escalation import due_step, ladder_markdown, step_people

R = RoleName


@pytest.mark.parametrize(
    ("elapsed", "due"), [(0, 0), (4.9, 0), (5, 1), (14.9, 1), (15, 2), (30, 3), (999, 3)]
)
def test_steps_fall_due_on_the_cumulative_ladder(elapsed: float, due: int) -> None:
    assert due_step(elapsed, [5, 10, 15]) == due


INV = Inventory(
    people={
        "a": Person(name="a", roles=[R.operations]),
        "b": Person(name="b", roles=[R.operations]),
        "boss": Person(name="boss", roles=[R.command_center]),
        "deputy": Person(name="deputy", roles=[R.command_center], backup=True),
    }
)


def test_each_step_pages_the_next_person_then_the_backup_then_the_command_center() -> None:
    at = datetime(2026, 1, 1, 12, tzinfo=UTC)
    assert step_people(1, INV, at) == (R.operations, ["a", "b"])  # no roster: every member
    roster = Roster(name="operations", timezone="UTC", start=date(2026, 1, 1), rotation=["a", "b"])
    with_roster = INV.model_copy(update={"rosters": {"operations": roster}})
    assert step_people(1, with_roster, at) == (R.operations, ["b"])  # a is on duty
    assert step_people(2, INV, at) == (R.command_center, ["deputy"])
    assert step_people(3, INV, at) == (R.command_center, None)


def test_the_report_section_lists_the_steps_taken_and_the_acknowledgement() -> None:
    start = datetime(2026, 1, 1, 12, tzinfo=UTC)
    acked = start + timedelta(minutes=40)
    run = SimpleNamespace(
        tags=["incident", "severity:III", "escalated:2", "acked-by:a",
              f"acked-at:{acked.timestamp():.0f}"],
        start_time=start, expected_start_time=start,
    )  # fmt: skip
    text = ladder_markdown(run, INV)
    assert text.startswith("Severity III: escalation after 15 min, 15 min, 15 min")
    assert "- step 1 (~12:15:00 UTC): paged the next person on duty" in text
    assert "- step 2 (~12:30:00 UTC): paged the backup" in text and "step 3" not in text
    assert "- acknowledged by **a** at 12:40:00 UTC (40.0 min after the start)" in text
    waiting = SimpleNamespace(
        tags=["incident", "severity:IV", "await-ack"], start_time=start, expected_start_time=start
    )
    assert "not acknowledged yet" in ladder_markdown(waiting, INV)
    steps = ["Step 1:\n\n| time | event |", "Step 2:\n\n| time | event |"]
    with_deliveries = ladder_markdown(run, INV, steps)
    assert with_deliveries.index("Step 1:") < with_deliveries.index("Step 2:")
