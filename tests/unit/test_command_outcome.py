"""A command whose exit status never came back (connection lost mid-command): the
result says "unknown", and the report and timeline say the command may have run —
never "No command was run." (the real fault: tests/faults/test_ssh_killed.py)."""

from __future__ import annotations

import pickle
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from inventory import secrets
from inventory.alert import Alert
from inventory.errors import CommandError, CommandTimeout, SSHError
from inventory.models import Inventory
from inventory.routing import RouteDecision
from remediations.context import IncidentContext
from tasks.report.render import OUTCOME_UNKNOWN, Timeline, command_outcome, render_report
from tasks.ssh.models import LOST_MID_COMMAND, CommandResult, Drained

AT = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
SECRET = "hunter2-not-a-real-password-7f3a"


@pytest.fixture(autouse=True)
def _secret() -> Iterator[None]:
    secrets._forget_all()
    secrets.register_secret_value(SECRET)
    yield
    secrets._forget_all()


def _lost(**extra: object) -> CommandResult:
    fields: dict[str, object] = {
        "host": "web-1",
        "command": f"systemctl restart web --token {SECRET}",
        "exit_code": None,
        "duration_s": 1.5,
        "stdout_tail": f"stopping web\nstarting web with {SECRET}\n",
        "stderr_tail": "warning: slow start\n",
        "started_at": AT,
        "connection_lost": True,
        "message": LOST_MID_COMMAND,
    }
    return CommandResult.model_validate(fields | extra)


def _ctx() -> IncidentContext:
    return IncidentContext(
        alert=Alert(fingerprint="f", labels={"alertname": "WebDown"}),
        inv=Inventory(),
        decision=RouteDecision(routed=True, reason="test", target="web", target_kind="service"),
        approve=lambda plan: pytest.fail("no gate here"),
        timeline=Timeline(),
    )


@pytest.mark.parametrize(
    ("exit_code", "timed_out", "outcome"),
    [(0, False, "ok"), (3, False, "failed"), (None, True, "timed_out"), (None, False, "unknown")],
)
def test_outcome_of_a_result(exit_code: int | None, timed_out: bool, outcome: str) -> None:
    res = _lost(exit_code=exit_code, timed_out=timed_out, connection_lost=False, message="")
    assert res.outcome == outcome and res.ok == (outcome == "ok")
    dumped = res.model_dump(mode="json")
    assert dumped["outcome"] == outcome and command_outcome(dumped) == outcome
    assert CommandResult.model_validate(dumped) == res  # computed fields round-trip


def test_drained_without_a_status_is_unknown_and_keeps_the_output() -> None:
    got = Drained(-1, False, "partial\n", "", "EOFError: socket closed")
    assert got.no_status and not Drained(0, False, "", "").no_status
    assert not Drained(None, True, "", "").no_status  # a timeout is not "unknown"
    res = got.result("web-1", "true", AT, 0.25, True, f"{LOST_MID_COMMAND} ({SECRET})")
    assert res.outcome == "unknown" and res.exit_code is None and res.connection_lost
    assert res.stdout_tail == "partial\n" and SECRET not in res.message


def test_report_lists_an_unknown_outcome_with_missing_status_and_last_output() -> None:
    ctx = _ctx()
    ctx.record([_lost()])
    report = render_report("Incident WebDown — outcome_unknown", {}, ctx.timeline, ctx.commands)
    assert "No command was run." not in report
    assert "| outcome | exit |" in report
    row = next(line for line in report.splitlines() if line.startswith("| web-1 |"))
    assert f"| {OUTCOME_UNKNOWN} | missing | 1.500 |" in row
    assert OUTCOME_UNKNOWN == "outcome unknown — the command may have run"
    assert "**Outcome unknown** on web-1" in report
    assert "connection lost mid-command — the command may have run" in report
    assert "exit status missing after 1.500s" in report
    assert "starting web with ***" in report and "warning: slow start" in report
    assert SECRET not in report
    event = next(e for e in ctx.timeline.events if e.kind == "command")
    assert "outcome unknown, exit status missing after 1.500s" in event.text
    assert LOST_MID_COMMAND in event.text


def test_an_unknown_outcome_without_any_output_says_so() -> None:
    ctx = _ctx()
    ctx.record([_lost(stdout_tail="", stderr_tail="")])
    report = render_report("t", {}, ctx.timeline, ctx.commands)
    assert "No output was received before the connection was lost." in report
    assert "No command was run." not in report


def test_known_outcomes_and_plans_own_rows_render_as_before() -> None:
    ctx = _ctx()
    ctx.record([
        _lost(exit_code=0, connection_lost=False, message="", stdout_tail="done\n"),
        _lost(exit_code=None, timed_out=True, connection_lost=False, message=""),
    ])  # fmt: skip
    ctx.commands.append(  # how network_outage / hardware_failure record a step
        {"host": "dns", "command": "set A", "exit_code": 1, "duration_s": 0.1, "stdout_tail": "x"}
    )
    report = render_report("t", {}, ctx.timeline, ctx.commands)
    assert "| ok | 0 | 1.500 | done |" in report
    assert "| timed out | none (timed out) |" in report
    assert "| dns | `set A` | failed | 1 | 0.100 | x |" in report
    assert "outcome unknown" not in report and "Outcome unknown" not in report
    texts = [e.text for e in ctx.timeline.events]
    assert texts[0].endswith("→ exit 0 in 1.500s") and "timed out in 1.500s" in texts[1]


def test_no_commands_still_says_no_command_was_run() -> None:
    assert "No command was run." in render_report("t", {}, Timeline(), [])


def test_command_errors_carry_the_result_through_pickling() -> None:
    res = _lost(exit_code=127, connection_lost=False, message="")
    exc = CommandError("web-1: timeout(1) from coreutils is missing", res)
    assert isinstance(exc, SSHError)
    back = pickle.loads(pickle.dumps(exc))
    assert isinstance(back, CommandError) and back.result == res and str(back) == str(exc)
    with pytest.raises(CommandTimeout) as info:
        _lost(timed_out=True, connection_lost=False, message="").raise_on_timeout()
    assert isinstance(info.value.result, CommandResult) and info.value.result.timed_out
