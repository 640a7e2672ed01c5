"""The drill calendar: prefect.yaml's game-day schedules, one category each, turned on
for a lab only where the lab has the target (``contingency up --lab --game-days``)."""

from __future__ import annotations

from contingency.runtime.deploy import game_days_in, read_deployments, schedules
from inventory.loader import load_inventory
from tasks.actions.faults import SCENARIOS

LAB = load_inventory("inventory/examples/lab")  # no network or hardware lab (not root)
LABS = load_inventory("inventory/examples/lab/netns")


def _game_day() -> dict:  # type: ignore[type-arg]
    return next(d for d in read_deployments() if d["name"] == "game-day")


def test_every_scenario_has_its_day_and_none_is_on_by_default() -> None:
    spec = _game_day()
    planned = [s["parameters"]["scenario"] for s in spec["schedules"]]
    assert sorted(planned) == sorted(SCENARIOS)
    assert [s.active for s in schedules(spec)] == [False] * len(SCENARIOS)
    assert {s.schedule.cron for s in schedules(spec)} == {f"0 10 * * {d}" for d in (2, 3, 4, 5)}


def test_a_lab_turns_on_the_game_days_it_can_run() -> None:
    spec = _game_day()
    on = {s.parameters["scenario"] for s in schedules(spec, game_days_in(LAB)) if s.active}
    assert on == {"service-stop", "dataset-corrupt"}
    on = {s.parameters["scenario"] for s in schedules(spec, game_days_in(LABS)) if s.active}
    assert on == {"link-cut", "host-stop"}
    # other deployments' schedules are left as prefect.yaml says
    backup = next(d for d in read_deployments() if d["name"] == "backup")
    assert [s.active for s in schedules(backup, game_days_in(LAB))] == [True]
