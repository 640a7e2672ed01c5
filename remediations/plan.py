"""Typed plans: a remediation computes these from facts, shows them, then applies them."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from inventory.models import PlanName

Risk = Literal["low", "medium", "high"]


class Action(BaseModel):
    """One command on one host, exactly as it will run."""

    host: str
    command: str
    description: str = ""
    risk: Risk = "low"
    idempotent: bool = True


class Plan(BaseModel):
    plan: PlanName
    target: str
    actions: list[Action] = Field(default_factory=list)
    requires_approval: bool = False
    destructive: bool = False
    """Destructive plans (restores, failovers, fencing) need two different approvers."""
    reason: str = ""
    choices: list[str] = Field(default_factory=list)
    """What the approver may pick in the sign-off form (e.g. restore points); the
    plan's default is used when nobody picks."""

    @property
    def hosts(self) -> list[str]:
        return sorted({a.host for a in self.actions})

    def as_markdown(self) -> str:
        lines = [f"**Plan** `{self.plan}` on `{self.target}` — {self.reason}", ""]
        lines += [
            f"Hosts affected (blast radius): {len(self.hosts)} — {', '.join(self.hosts)}"
            + ("; **destructive: two approvers needed**" if self.destructive else ""),
            "",
        ]
        lines += ["| # | host | command | risk | idempotent |", "|---|---|---|---|---|"]
        for i, a in enumerate(self.actions, 1):
            lines.append(f"| {i} | {a.host} | `{a.command}` | {a.risk} | {a.idempotent} |")
        return "\n".join(lines)
