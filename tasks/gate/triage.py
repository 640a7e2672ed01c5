"""Tech support's triage (初步判断) of a problem a person reported by hand.

A human report (``contingency incident open`` without a plan, or the board's "report a
problem" form) pauses its incident at a typed form: a tech-support (or command-center)
member names the plan and target that fit — or none: a person handles it by hand — and
may set the severity level. The answer is checked against the inventory (the plan and
the target exist, the runbook is known, the level is one of the inventory's); a wrong
answer is refused, logged with who tried, and the form stays open. Nobody answering
within the triage policy's ``abort_after_s`` (``gate_policies.triage``, default one hour)
closes it as ``expired`` — the incident is then escalated, never guessed. Reminders go to
tech support at ``remind_after_s`` and to the command center at ``backup_after_s``.

Why no one-time code, unlike a sign-off: triage only chooses a plan; the plan's own
gates and, per the level, the command center's activation still stand before anything
runs.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Literal

from prefect import get_run_logger
from prefect.input import RunInput
from pydantic import BaseModel, Field

from inventory.models import Inventory, PlanName, RoleName
from inventory.routing import target_kind
from inventory.severity import levels_of
from tasks.escalation import AWAIT_TRIAGE
from tasks.gate.wait import wait_for_input
from tasks.gate.watch import GateWatch

__all__ = ["AWAIT_TRIAGE", "TRIAGED", "Triage", "TriageInput", "request_triage"]
TRIAGERS = (RoleName.tech_support, RoleName.command_center)
TRIAGED = "triaged"
"""Tag of a run whose triage is answered (``contingency incident triage`` waits for it)."""


class TriageInput(RunInput):
    person: str = Field(description="your name in the inventory, tech support (判断人)")
    plan: str = Field(
        "",
        description="the plan that fits (适用预案): software_crash, data_loss, network_outage, "
        "hardware_failure or runbook:NAME; empty = none fits, a person handles it by hand",
    )
    target: str = Field("", description="the service, host, link or dataset it acts on (目标)")
    severity: str = Field(
        "", description="the severity level (事件级别); empty = as the rules classify"
    )
    note: str = Field("", description="what you found (判断说明)")
    code: str = Field("", description="set by the system only (leave empty)")


class Triage(BaseModel):
    status: Literal["triaged", "by_hand", "expired", "cleared"]
    person: str = ""
    plan: str = ""
    target: str = ""
    severity: str = ""
    note: str = ""
    opened_at: datetime
    closed_at: datetime
    refused: list[str] = Field(default_factory=list)
    """Each refused answer: who, when, why."""

    @property
    def wait_s(self) -> float:
        return (self.closed_at - self.opened_at).total_seconds()

    def as_markdown(self) -> str:
        lines = [
            f"- {self.status} after {self.wait_s:.0f} s"
            + (f" by **{self.person}**" if self.person else ""),
        ]
        if self.status == "triaged":
            lines.append(f"- plan `{self.plan}` on `{self.target}`")
        if self.severity:
            lines.append(f"- severity set to {self.severity}")
        if self.note:
            lines.append(f"- note: {self.note}")
        lines += [f"- refused: {r}" for r in self.refused]
        return "\n".join(lines)


def triage_refusal(answer: TriageInput, inv: Inventory) -> str:
    """Why a triage answer is refused ("" if accepted). Pure."""
    who = answer.person.strip()
    allowed = {p.name for role in TRIAGERS for p in inv.members(role)}
    if who not in allowed:
        return f"{who[:64]!r} is not a tech-support or command-center member"
    levels = [lv.name for lv in levels_of(inv)]
    if answer.severity.strip() and answer.severity.strip() not in levels:
        return f"severity {answer.severity[:16]!r} is not a level ({', '.join(levels)})"
    plan, _, runbook = answer.plan.strip().partition(":")
    if not plan:
        return ""  # by hand
    if plan not in {p.value for p in PlanName}:
        return f"plan {plan[:40]!r} is not a plan ({', '.join(p.value for p in PlanName)})"
    if (plan == PlanName.runbook.value) != bool(runbook) or (
        runbook and runbook not in inv.runbooks
    ):
        return f"plan runbook needs a known runbook: runbook:NAME ({runbook[:40]!r})"
    if target_kind(answer.target.strip(), inv) is None:
        return f"target {answer.target[:64]!r} is not in the inventory"
    return ""


def request_triage(
    description: str, inv: Inventory, send: Callable[[str], None] | None = None
) -> Triage:
    """Wait for tech support's triage; see the module docstring. ``send(event)`` pages
    ``triage_reminder`` (tech support) and ``triage_backup`` (the command center)."""
    logger = get_run_logger()
    policy = inv.gate_policy("triage")
    nonce = secrets.token_hex(16)
    opened = datetime.now(UTC)
    refused: list[str] = []
    note = ""
    page = send or (lambda _: None)

    def watch_send(event: str, _codes: dict[str, str]) -> None:
        page("triage_reminder" if event == "gate_reminder" else "triage_backup")

    def system(decision: str, comment: str) -> dict[str, str]:
        return {"person": "system", "plan": "", "code": nonce, "note": f"{decision}: {comment}"}

    with GateWatch(policy, nonce, watch_send, dict, system_input=system) as watch:
        for n in range(1000):
            form = TriageInput.with_initial_data(description=note + description)
            remaining = max(policy.abort_after_s - watch.elapsed(), 1)
            answer = wait_for_input(form, f"triage-{n}-{nonce[:6]}", remaining, policy.poll_s)
            now = datetime.now(UTC)
            if answer.code and secrets.compare_digest(answer.code, nonce):
                status = "cleared" if answer.note.startswith("cleared") else "expired"
                logger.warning("triage closed: %s", status)
                return Triage(status=status, opened_at=opened, closed_at=now, refused=refused)
            reason = triage_refusal(answer, inv)
            if reason:
                who = answer.person.strip()[:64]
                logger.warning("triage: refused an answer by %s: %s", who, reason)
                refused.append(f"{now:%H:%M:%S} UTC {who}: {reason}")
                note = f"> **Refused** ({now:%H:%M:%S} UTC): {reason}.\n\n"
                continue
            plan = answer.plan.strip()
            logger.info("triage by %s: %s", answer.person.strip(), plan or "by hand")
            return Triage(
                status="triaged" if plan else "by_hand",
                person=answer.person.strip(),
                plan=plan,
                target=answer.target.strip() if plan else "",
                severity=answer.severity.strip(),
                note=answer.note.strip()[:2000],
                opened_at=opened,
                closed_at=now,
                refused=refused,
            )
    raise RuntimeError("triage: too many attempts")


def triage_description(summary: str, reporter: str, target: str, inv: Inventory, lang: str) -> str:
    """What the triage form shows: the report and the choices."""
    runbooks = ", ".join(f"runbook:{n}" for n in sorted(inv.runbooks)) or "—"
    levels = ", ".join(lv.name for lv in levels_of(inv))
    if lang == "zh":
        return (
            f"## 技术支持团队初步判断\n\n**{reporter}** 报告：{summary}\n\n"
            + (f"报告人指出的目标：`{target}`\n\n" if target else "")
            + "请选择适用的预案和目标（留空预案 = 无适用预案，转人工处置），可设定事件级别。"
            f"\n\n- 预案：{', '.join(p.value for p in PlanName if p.value != 'runbook')}, "
            f"{runbooks}\n- 级别：{levels}\n"
        )
    return (
        f"## Triage by tech support\n\n**{reporter}** reports: {summary}\n\n"
        + (f"Target named by the reporter: `{target}`\n\n" if target else "")
        + "Name the plan and the target that fit (no plan = none fits: a person handles it "
        "by hand); you may set the severity level.\n\n"
        f"- plans: {', '.join(p.value for p in PlanName if p.value != 'runbook')}, "
        f"{runbooks}\n- levels: {levels}\n"
    )
