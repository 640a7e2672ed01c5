"""What an incident hands to a remediation, and how an incident ends.

A remediation's ``prepare(ctx)`` gathers facts and returns a :class:`Plan` (or a
:class:`Verdict` when there is nothing to do); the executor (``remediations/executor.py``)
runs the plan through :meth:`IncidentContext.gate` (rails, sign-off). The incident flow
owns routing, the gate mechanics and the report.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from pydantic import BaseModel

from inventory.alert import Alert
from inventory.models import Inventory
from inventory.outcomes import Outcome
from inventory.routing import RouteDecision
from remediations.plan import Plan
from remediations.runners import StepResult
from tasks.notify import Pager
from tasks.report.render import OUTCOME_UNKNOWN, Timeline
from tasks.ssh.models import CommandResult


class Verdict(BaseModel):
    """How an incident ended: one :class:`Outcome` (which says whether a human must
    take over: the run then ends ``Escalated``) and what happened, in words."""

    outcome: Outcome
    message: str

    @property
    def ok(self) -> bool:
        return self.outcome.ok


class GateDecision(Protocol):
    @property
    def status(self) -> str: ...
    @property
    def approved(self) -> bool: ...
    @property
    def approver(self) -> str | None: ...
    @property
    def wait_s(self) -> float: ...
    @property
    def choice(self) -> str: ...


GATE_OUTCOMES = {
    "rejected": Verdict(
        outcome=Outcome.rejected, message="the command center rejected the plan; nothing was run"
    ),
    "expired": Verdict(
        outcome=Outcome.not_approved,
        message="no decision before the gate timed out; nothing was run",
    ),
    "cleared": Verdict(
        outcome=Outcome.cleared,
        message="the alert resolved while the gate waited; the incident "
        "cleared on its own and nothing was run",
    ),
}


def _command_event(res: CommandResult) -> str:
    took = f"in {res.duration_s:.3f}s"
    if res.outcome == "unknown":
        return (
            f"{res.host}: `{res.command}` → outcome unknown, exit status missing after "
            f"{res.duration_s:.3f}s: {res.message or OUTCOME_UNKNOWN}"
        )
    if res.timed_out:
        return f"{res.host}: `{res.command}` → timed out {took}"
    return f"{res.host}: `{res.command}` → exit {res.exit_code} {took}"


@dataclass
class IncidentContext:
    alert: Alert
    inv: Inventory
    decision: RouteDecision
    approve: Callable[[Plan], GateDecision]
    dry_run: bool = False
    activation: str = ""
    """Non-empty: the incident's severity level demands that the command center activates
    the plan (启动应急预案): a sign-off before the first change even where the plan has
    none. The text says why (the level)."""
    timeline: Timeline = field(default_factory=Timeline)
    commands: list[dict[str, object]] = field(default_factory=list)
    plan: Plan | None = None
    sections: dict[str, str] = field(default_factory=dict)
    options: dict[str, str] = field(default_factory=dict)
    """Typed-by-the-plan options from the CLI/API (e.g. ``restore_before``), never alert text."""
    last_gate: GateDecision | None = None
    pager: Pager | None = None
    """The incident's pager (drill-aware, listed in the report); None outside incidents."""
    facts: dict[str, object] = field(default_factory=dict)
    """What a remediation learnt while preparing, for its ``replan``/``finish``."""
    steps: list[StepResult] = field(default_factory=list)
    """Every action the executor ran, in order (rollbacks marked), as typed results."""

    @property
    def target(self) -> str:
        if self.decision.target is None:
            raise ValueError("the incident has no target")
        return self.decision.target

    def event(self, kind: str, text: str) -> None:
        self.timeline.add(kind, text)

    def record(self, results: list[CommandResult]) -> None:
        """Add commands that were sent to the report (call it for every command that
        may have run — also when its task ended in an exception that carries a result)."""
        for res in results:
            self.commands.append(res.model_dump(mode="json"))
            self.event("command", _command_event(res))

    def rule_requires_approval(self) -> bool:
        return any(r.requires_approval for r in self.inv.routing if r.name == self.decision.rule)

    def ask(self, plan: Plan) -> Verdict | None:
        """Sign-off only: the command center's decision on ``plan``, in the timeline; a
        Verdict when it is anything but an approval."""
        self.event("gate opened", "waiting for the command center")
        gate = self.approve(plan)
        self.last_gate = gate
        by = f" by {gate.approver}" if gate.approver else ""
        self.event("gate closed", f"{gate.status}{by} after {gate.wait_s:.1f}s")
        if gate.approved:
            return None
        return GATE_OUTCOMES.get(gate.status) or Verdict(
            outcome=Outcome.not_approved, message=f"gate ended {gate.status}; nothing was run"
        )

    def gate(self, plan: Plan) -> Verdict | None:
        """The one checkpoint before a plan acts: the safety rails (kill switch, blast
        radius, cooldown, flap breaker, rate cap), then sign-off if the plan needs it.
        Destructive plans always need it. A Verdict means: stop here, nothing ran."""
        from remediations import rails

        if plan.destructive and not plan.requires_approval:
            plan.requires_approval = True
        if self.activation and not plan.requires_approval:
            self.event("activation", f"{self.activation}: the command center activates the plan")
            plan.requires_approval = True
        if (stop := rails.check(plan, self.inv)) is not None:
            self.event("rails", f"{stop.outcome}: {stop.message}")
            return stop
        if plan.requires_approval:
            if (refused := self.ask(plan)) is not None:
                return refused
            # The world may have changed while the gate waited (a freeze, another
            # remediation of the target): every rail again before acting.
            if (stop := rails.check(plan, self.inv)) is not None:
                self.event("rails", f"after sign-off: {stop.outcome}: {stop.message}")
                return stop
        rails.tag_run(rails.ACTED)
        return None
