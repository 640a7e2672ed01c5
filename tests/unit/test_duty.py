"""The duty roster (值班): who is on duty at a given time, and the inventory's checks."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml

from inventory.duty import Override, Roster, on_duty
from inventory.loader import InventoryError, load_inventory

SH = ZoneInfo("Asia/Shanghai")
DAILY = Roster(
    name="operations",
    timezone="Asia/Shanghai",
    handover=time(9, 0),
    start=date(2026, 1, 5),
    rotation=["a", "b", "c"],
)


@pytest.mark.parametrize(
    ("at", "person", "next_person"),
    [
        (datetime(2026, 1, 5, 9, 0, tzinfo=SH), "a", "b"),  # the first handover
        (datetime(2026, 1, 6, 8, 59, tzinfo=SH), "a", "b"),  # a minute before the next
        (datetime(2026, 1, 6, 9, 0, tzinfo=SH), "b", "c"),
        (datetime(2026, 1, 8, 9, 0, tzinfo=SH), "a", "b"),  # round again
        (datetime(2026, 1, 5, 8, 0, tzinfo=SH), "c", "a"),  # before the start: counted back
        (datetime(2026, 1, 6, 0, 30, tzinfo=UTC), "a", "b"),  # 08:30 in Shanghai
        (datetime(2026, 1, 6, 1, 30, tzinfo=UTC), "b", "c"),  # 09:30 in Shanghai
    ],
)
def test_daily_rotation_hands_over_at_the_zones_wall_clock(
    at: datetime, person: str, next_person: str
) -> None:
    shift = on_duty(DAILY, at)
    assert (shift.person, shift.next_person) == (person, next_person)
    assert shift.since <= at < shift.until
    assert shift.since.astimezone(SH).time() == time(9, 0)


def test_naive_times_are_in_the_rosters_zone() -> None:
    assert on_duty(DAILY, datetime(2026, 1, 6, 8, 30)).person == "a"
    assert on_duty(DAILY, datetime(2026, 1, 6, 9, 30)).person == "b"


def test_weekly_rotation_across_a_daylight_saving_change_keeps_the_handover_time() -> None:
    berlin = ZoneInfo("Europe/Berlin")
    weekly = Roster(
        name="operations",
        timezone="Europe/Berlin",
        handover=time(8, 0),
        period_days=7,
        start=date(2026, 3, 23),  # a Monday; summer time starts on Sunday 29 March
        rotation=["a", "b"],
    )
    before = on_duty(weekly, datetime(2026, 3, 30, 7, 59, tzinfo=berlin))
    after = on_duty(weekly, datetime(2026, 3, 30, 8, 0, tzinfo=berlin))
    assert (before.person, after.person) == ("a", "b")
    assert after.since == datetime(2026, 3, 30, 8, 0, tzinfo=berlin)
    assert after.since.utcoffset() != before.since.utcoffset()  # CET then CEST


def test_the_last_override_that_covers_the_time_wins() -> None:
    roster = DAILY.model_copy(
        update={
            "overrides": [
                Override(person="c", start=datetime(2026, 1, 6, 9), end=datetime(2026, 1, 8, 9)),
                Override(person="a", start=datetime(2026, 1, 7, 9), end=datetime(2026, 1, 7, 21)),
            ]
        }
    )
    assert on_duty(roster, datetime(2026, 1, 6, 12)).person == "c"
    swapped = on_duty(roster, datetime(2026, 1, 7, 12))
    assert swapped.person == "a" and swapped.override
    assert swapped.until == datetime(2026, 1, 7, 21, tzinfo=SH)
    assert on_duty(roster, datetime(2026, 1, 8, 9)).person == "a"  # the rotation again


def _write(tmp_path: Path, doc: dict) -> Path:
    path = tmp_path / "inv.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    return path


BASE = {
    "roles": {"operations": {"notify": ["ops"]}, "command_center": {"notify": ["cc"]}},
    "people": {
        "a": {"roles": ["operations"]},
        "b": {"roles": ["command_center"]},
    },
}


def test_the_inventory_refuses_a_roster_with_strangers_and_bad_zones(tmp_path: Path) -> None:
    doc = {
        **BASE,
        "rosters": {
            "operations": {
                "timezone": "Mars/Olympus",
                "start": "2026-01-05",
                "rotation": ["a", "b", "zed"],
                "overrides": [{"person": "zed", "start": "2026-01-06T09:00",
                               "end": "2026-01-05T09:00"}],
            },
            "janitors": {"start": "2026-01-05", "rotation": ["a"]},
        },
    }  # fmt: skip
    with pytest.raises(InventoryError) as exc:
        load_inventory(_write(tmp_path, doc))
    text = str(exc.value)
    assert "unknown time zone 'Mars/Olympus'" in text
    assert "rosters.operations.rotation.1: 'b' is not in the role 'operations'" in text
    assert "rosters.operations.rotation.2: unknown person 'zed'" in text
    assert "end must be after start" in text
    assert "rosters.janitors: 'janitors' is not a role" in text


def test_the_lab_inventory_has_an_operations_roster() -> None:
    inv = load_inventory(Path(__file__).resolve().parents[2] / "inventory" / "examples" / "lab")
    roster = inv.rosters["operations"]
    people = {on_duty(roster, datetime(2026, 1, 5 + d, 12, tzinfo=SH)).person for d in range(2)}
    assert people == {"wang.fang", "zhao.lei"}
    assert all(inv.people[p].fallback for p in people)  # SMS when chat is down
