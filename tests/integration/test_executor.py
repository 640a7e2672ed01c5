"""The one executor against a real sshd and the real Prefect server: a freeze during a
plan stops it before the next changing step (and runs no undo), a failed step rolls
back what ran (newest first), a failed verification rolls back too, a rejected gate and
a dry run run nothing. What ran is read from a marker file on the host."""

from __future__ import annotations

import contextvars
import threading
import time
import uuid
from pathlib import Path

import pytest
from prefect import flow

from inventory.alert import Alert
from inventory.models import Host, Inventory, PlanName, RailsPolicy, Service
from inventory.outcomes import Outcome
from inventory.routing import RouteDecision
from remediations import executor, rails
from remediations.context import IncidentContext, Verdict
from remediations.plan import Plan, ProbeAction, SshAction
from tests.fixtures_netns import Approver

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("lab_stack", "ssh_home")]


def _inv(host: Host) -> Inventory:
    # the session's server holds other tests' remediations: no cooldown or cap here
    free = RailsPolicy(cooldown_s=0, flap_count=100, max_runs_per_window=100000)
    never = Service.model_validate(
        {
            "name": "never",
            "host": "box",
            "health": {"kind": "command", "command": "test -e /nonexistent-contingency"},
            "manager": {"kind": "commands", "restart": ["true"]},
            "verify": {"deadline_s": 1, "first_delay_s": 0.1, "backoff": 2, "max_interval_s": 0.5},
        }
    )
    return Inventory(hosts={"box": host}, services={"never": never}, rails={"default": free})


def _ctx(inv: Inventory, approve: Approver | None = None, dry: bool = False) -> IncidentContext:
    target = f"exec-{uuid.uuid4().hex[:8]}"
    return IncidentContext(
        alert=Alert(fingerprint=target, labels={"alertname": "ExecutorTest"}),
        inv=inv,
        decision=RouteDecision(routed=True, reason="test", target=target, target_kind="service"),
        approve=approve or Approver(),
        dry_run=dry,
    )


def _run(ctx: IncidentContext, plan: Plan) -> Verdict:
    @flow(name="executor-test")
    def run() -> Verdict:
        return executor.execute(ctx, plan)

    return run()


def _step(cmd: str, undo: str | None = None, **kw: object) -> SshAction:
    rollback = [SshAction(host="box", command=undo, name=f"undo {cmd[:20]}")] if undo else []
    return SshAction(host="box", command=cmd, rollback=rollback, **kw)  # type: ignore[arg-type]


def _plan(ctx: IncidentContext, *steps: SshAction, **kw: object) -> Plan:
    return Plan(plan=PlanName.software_crash, target=ctx.target, actions=list(steps), **kw)  # type: ignore[arg-type]


def test_a_freeze_during_the_plan_stops_it_before_the_next_changing_step(
    ssh_host: Host, tmp_path: Path
) -> None:
    marker, frozen = tmp_path / "ran", tmp_path / "frozen"
    started = tmp_path / "started"
    ctx = _ctx(_inv(ssh_host))
    # the freeze comes once the first step runs (not after a fixed delay: under a loaded
    # CI the first step once started after it), and that step ends only once the freeze
    # is recorded (not after a fixed sleep: the freeze's API call once took longer)
    wait = f"timeout 60 sh -c 'until [ -f {frozen} ]; do sleep 0.1; done'"
    first = _step(f"touch {started}; {wait}; echo one >> {marker}", f"echo undo >> {marker}")
    plan = _plan(ctx, first, _step(f"echo two >> {marker}"))
    # the Prefect settings the session's fixtures set live in context variables
    here = contextvars.copy_context()

    def freeze() -> None:
        deadline = time.monotonic() + 60
        while not started.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        here.run(rails.freeze, "test", "frozen mid-plan")
        frozen.touch()

    freezer = threading.Thread(target=freeze, daemon=True)
    freezer.start()
    try:
        verdict = _run(ctx, plan)
        freezer.join(60)
        was = rails.frozen()
    finally:
        freezer.join(60)
        rails.thaw()
    assert was is not None
    events = [(e.kind, e.text[:80]) for e in ctx.timeline.events]
    assert marker.read_text() == "one\n", ("the second step must not run once frozen", events)
    assert verdict.outcome is Outcome.frozen and not verdict.ok
    assert "steps already run: " in verdict.message and "frozen mid-plan" in verdict.message
    assert f"not undone (to undo, in order: echo undo >> {marker})" in verdict.message
    assert any(e.kind == "rails" and "before step 2" in e.text for e in ctx.timeline.events)


def test_a_failed_step_rolls_back_what_ran_newest_first(ssh_host: Host, tmp_path: Path) -> None:
    m = tmp_path / "ran"
    ctx = _ctx(_inv(ssh_host))
    plan = _plan(
        ctx,
        _step(f"echo a >> {m}", f"echo undo-a >> {m}"),
        _step(f"echo b >> {m}", f"echo undo-b >> {m}"),
        _step(f"echo c >> {m}; exit 3", f"echo undo-c >> {m}", failures={3: "c is broken"}),
        _step(f"echo d >> {m}"),
        failure=Outcome.failover_failed,
    )
    verdict = _run(ctx, plan)
    assert m.read_text().split() == ["a", "b", "c", "undo-c", "undo-b", "undo-a"]
    assert verdict.outcome is Outcome.failover_failed and verdict.outcome.needs_human
    assert "c is broken" in verdict.message and "rolled back" in verdict.message
    assert [s.rollback for s in ctx.steps] == [False, False, False, True, True, True]
    assert ctx.steps[2].exit_code == 3 and not ctx.steps[2].ok


def test_a_failed_verification_rolls_back_and_needs_a_human(ssh_host: Host, tmp_path: Path) -> None:
    m = tmp_path / "ran"
    ctx = _ctx(_inv(ssh_host))
    plan = _plan(
        ctx,
        _step(f"echo a >> {m}", f"echo undo-a >> {m}"),
        verify=[ProbeAction(service="never", until_healthy=True)],
        unrecovered=Outcome.not_recovered,
    )
    verdict = _run(ctx, plan)
    assert m.read_text().split() == ["a", "undo-a"]
    assert verdict.outcome is Outcome.not_recovered and "did not verify" in verdict.message


def test_a_rejected_gate_and_a_dry_run_run_nothing(ssh_host: Host, tmp_path: Path) -> None:
    m = tmp_path / "ran"
    inv = _inv(ssh_host)
    rejected = Approver("rejected")
    ctx = _ctx(inv, rejected)
    verdict = _run(ctx, _plan(ctx, _step(f"echo a >> {m}"), requires_approval=True))
    assert verdict.outcome is Outcome.rejected and verdict.ok and len(rejected.seen) == 1
    dry = _ctx(inv, dry=True)
    verdict = _run(dry, _plan(dry, _step(f"echo a >> {m}"), requires_approval=True))
    assert verdict.outcome is Outcome.dry_run and dry.plan is not None
    assert not m.exists() and dry.steps == [] and ctx.steps == []
