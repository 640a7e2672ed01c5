"""A runbook run by the incident flow in this process (Prefect API of the lab stack)
against a real sshd (pinned host key): typed parameters are shell-quoted into the
commands, each step is a task named after it, failures follow on_failure, and the
dry run shows every command without running any."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

from flows.incident import IncidentResult, incident
from inventory.alert import Alert
from inventory.models import Host
from inventory.settings import get_settings

pytestmark = pytest.mark.integration

EVIL = "a b; touch PWNED; $(touch PWNED2)"
"""A parameter value that would run commands if it were not quoted."""


def _inventory(tmp_path: Path, host: Host) -> Path:
    inv = {
        "hosts": {
            "box": {
                "address": host.address,
                "port": host.port,
                "user": host.user,
                "key_secret": host.key_secret,
                "host_key": host.host_key,
            }
        },
        "roles": {"command_center": {}},
        # tests act back to back, and the session's shared Prefect server holds every other
        # test's remediations too: no cooldown or rate cap from those here
        "rails": {"default": {"cooldown_s": 0, "flap_count": 100, "max_runs_per_window": 100000}},
        "runbooks": {
            "tidy": {
                "title": {"en": "Tidy a directory", "zh": "整理目录"},
                "parameters": {
                    "dir": {"type": "str", "required": True},
                    "keep": {"type": "int", "default": 1, "min": 0},
                    "settle": {"type": "duration", "default": "100ms"},
                    "force": {"type": "bool", "default": False},
                },
                "steps": [
                    {"name": "prepare", "kind": "ssh", "host": "box",
                     "command": "mkdir -p {dir} && printf x > {dir}/f && echo keep={keep}"},
                    {"name": "settle", "kind": "ssh", "host": "box",
                     "command": "sleep {settle} && echo force={force}", "timeout_s": 10},
                    {"name": "page-on-failure", "kind": "ssh", "host": "box",
                     "command": "exit 7", "on_failure": "escalate"},
                    {"name": "best-effort", "kind": "ssh", "host": "box",
                     "command": "exit 3", "on_failure": "continue"},
                    {"name": "too-slow", "kind": "ssh", "host": "box",
                     "command": "sleep 10", "timeout_s": 0.5, "on_failure": "continue"},
                    {"name": "pause", "kind": "wait", "seconds": 0.1},
                    {"name": "finish", "kind": "ssh", "host": "box",
                     "command": "ls {dir} > {dir}/listing"},
                ],
            }
        },
        "routing": [
            {"name": "tidy", "match": {"alertname": "Tidy"}, "plan": "runbook",
             "runbook": "tidy", "target": "box", "params": {"dir": "will-be-overridden"}},
        ],
    }  # fmt: skip
    path = tmp_path / "inventory.yaml"
    path.write_text(yaml.safe_dump(inv))
    return path


@pytest.fixture
def use_inventory(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, ssh_host: Host
) -> Iterator[Path]:
    monkeypatch.setenv("CONTINGENCY_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("CONTINGENCY_INVENTORY", str(_inventory(tmp_path, ssh_host)))
    get_settings.cache_clear()
    yield tmp_path
    get_settings.cache_clear()
    _flush_to_api()


def _flush_to_api() -> None:
    """Send this process's queued logs and events while the stack still runs (else they
    are retried against a stopped API for a minute when the session ends)."""
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    APILogWorker.drain_all(timeout=10, at_exit=False)
    EventsWorker.drain_all(timeout=10, at_exit=False)


def _task_names(run_id: uuid.UUID) -> list[str]:
    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run_id]))
        )
    return [t.name for t in runs]


@pytest.mark.usefixtures("lab_stack")
def test_runbook_on_a_real_sshd(use_inventory: Path, ssh_host: Host) -> None:
    target = use_inventory / EVIL
    options = {"dir": str(target), "keep": "2", "settle": "200ms", "force": "yes"}
    state = incident(
        Alert(fingerprint=uuid.uuid4().hex, labels={"alertname": "Tidy"}),
        plan="runbook:tidy",
        target="box",
        options=options,
        return_state=True,
    )
    result: IncidentResult = state.result(raise_on_failure=False)
    report = Path(result.report_path or "").read_text()
    assert state.name == "Escalated" and result.outcome == "runbook_partial", report
    # the parameters went in quoted: the odd directory exists, nothing else ran
    assert (target / "f").read_text() == "x"
    assert (target / "listing").read_text().split() == ["f", "listing"]
    assert not list(use_inventory.rglob("PWNED*")) and not Path("PWNED").exists()
    assert "box: `sleep 0.2 && echo force=true` → exit 0" in report
    assert "prepare (ssh): ok — exit 0" in report
    assert "page-on-failure (ssh): FAILED — exit 7" in report
    assert "best-effort (ssh): FAILED — exit 3" in report
    assert "too-slow (ssh): FAILED" in report and "(timed out)" in report
    assert (
        "failed and escalated: page-on-failure; failed and passed over: best-effort, too-slow"
        in (report)
    )
    assert "finish (ssh): ok — exit 0" in report
    names = _task_names(state.state_details.flow_run_id)  # type: ignore[arg-type]
    steps = ["prepare", "settle", "page-on-failure", "best-effort", "too-slow", "pause", "finish"]
    assert set(steps) <= set(names)


@pytest.mark.usefixtures("lab_stack")
def test_dry_run_shows_every_command_and_runs_none(use_inventory: Path) -> None:
    target = use_inventory / "dry"
    state = incident(
        Alert(fingerprint=uuid.uuid4().hex, labels={"alertname": "Tidy"}),
        dry_run=True,
        return_state=True,
        options={"dir": str(target)},
    )
    result: IncidentResult = state.result(raise_on_failure=False)
    assert state.is_completed() and result.outcome == "dry_run"
    assert result.plan is not None
    commands = [a.shown for a in result.plan.actions]
    assert commands[0] == f"mkdir -p {target} && printf x > {target}/f && echo keep=1"
    assert commands[1] == "sleep 0.1 && echo force=false"
    assert len(commands) == 7 and not target.exists()
    assert [n for n in _task_names(state.state_details.flow_run_id) if n == "prepare"] == []  # type: ignore[arg-type]


@pytest.mark.usefixtures("lab_stack")
def test_bad_parameters_run_nothing(use_inventory: Path) -> None:
    state = incident(
        Alert(fingerprint=uuid.uuid4().hex, labels={"alertname": "Tidy"}),
        return_state=True,
        options={"dir": str(use_inventory / "x"), "keep": "2; reboot"},
    )
    result: IncidentResult = state.result(raise_on_failure=False)
    assert state.name == "Escalated" and result.outcome == "bad_parameters"
    report = Path(result.report_path or "").read_text()
    assert "parameter keep: '2; reboot' is not an integer" in report
    assert not (use_inventory / "x").exists()


@dataclass(frozen=True)
class _Decision:
    """What a command-center member decided (a scripted approver: the real gate and its
    one-time codes are covered by test_runbook.py through the stack)."""

    status: str
    approver: str | None = "li.na"
    wait_s: float = 0.0
    choice: str = ""

    @property
    def approved(self) -> bool:
        return self.status == "approved"


@pytest.mark.usefixtures("lab_stack")
def test_each_approval_step_asks_and_a_rejection_stops_there_with_a_scripted_approver(
    use_inventory: Path,
) -> None:
    from prefect import flow

    from inventory.loader import load_inventory
    from inventory.models import PlanName
    from inventory.routing import RouteDecision
    from remediations import handler_for
    from remediations.context import IncidentContext, Verdict

    handle = handler_for(PlanName.runbook)
    assert handle is not None

    doc = yaml.safe_load((use_inventory / "inventory.yaml").read_text())
    doc["runbooks"]["two-gates"] = {"steps": [
        {"name": "first", "kind": "ssh", "host": "box", "command": f"touch {use_inventory}/one"},
        {"name": "gate-1", "kind": "approval"},
        {"name": "second", "kind": "ssh", "host": "box", "command": f"touch {use_inventory}/two"},
        {"name": "gate-2", "kind": "approval"},
        {"name": "third", "kind": "ssh", "host": "box", "command": f"touch {use_inventory}/three"},
    ]}  # fmt: skip
    (use_inventory / "inventory.yaml").write_text(yaml.safe_dump(doc))
    inv = load_inventory(use_inventory / "inventory.yaml")
    asked: list[bool] = []
    answers = iter(["approved", "rejected"])

    def approve(plan: object) -> _Decision:
        asked.append(getattr(plan, "requires_approval", False))
        return _Decision(next(answers))

    @flow
    def run() -> Verdict:
        ctx = IncidentContext(
            alert=Alert(fingerprint=uuid.uuid4().hex, labels={}),
            inv=inv,
            decision=RouteDecision(
                routed=True, plan="runbook", target="box", runbook="two-gates", reason="test"
            ),
            approve=approve,
        )
        out = handle(ctx)
        assert [e.kind for e in ctx.timeline.events].count("gate closed") == 2
        return out

    out = run()
    assert asked == [True, True]
    assert (use_inventory / "one").exists() and (use_inventory / "two").exists()
    assert not (use_inventory / "three").exists()
    assert out.outcome == "rejected"
    assert out.message == (
        "the command center rejected the plan; the runbook stopped here "
        "(steps already run: first, second)"
    )
