"""Approval gate: the flow pauses; a command-center member approves or rejects in the UI."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from prefect import get_run_logger
from prefect.flow_runs import pause_flow_run
from prefect.input import RunInput
from pydantic import BaseModel, Field

from inventory.models import Inventory, RoleName


class ApprovalInput(RunInput):
    decision: Literal["approve", "reject"] = Field(description="approve or reject the plan")
    approver: str = Field(description="your name in the inventory (command center)")
    comment: str = Field("", description="why")


class GateAttempt(BaseModel):
    at: datetime
    approver: str
    decision: str
    accepted: bool
    reason: str = ""


class GateResult(BaseModel):
    approved: bool
    approver: str | None = None
    comment: str = ""
    opened_at: datetime
    closed_at: datetime
    attempts: list[GateAttempt] = Field(default_factory=list)

    @property
    def wait_s(self) -> float:
        return (self.closed_at - self.opened_at).total_seconds()


def request_approval(
    description: str,
    inv: Inventory,
    timeout_s: int = 3600,
    poll_interval_s: float = 1.0,
    max_attempts: int = 10,
) -> GateResult:
    """Pause the flow run until a command-center member decides.

    Decisions from anyone not in the command center are refused and the gate stays open.
    A timeout never approves: Prefect raises ``FlowPauseTimeout`` and the run fails.
    """
    logger = get_run_logger()
    allowed = {p.name for p in inv.members(RoleName.command_center)}
    opened = datetime.now(UTC)
    attempts: list[GateAttempt] = []
    note = ""
    for _ in range(max_attempts):
        form = ApprovalInput.with_initial_data(description=note + description, decision="approve")
        answer = pause_flow_run(
            wait_for_input=form, timeout=timeout_s, poll_interval=poll_interval_s
        )
        now = datetime.now(UTC)
        if answer.approver not in allowed:
            reason = f"{answer.approver!r} is not a command-center member"
            attempts.append(
                GateAttempt(
                    at=now,
                    approver=answer.approver[:64],
                    decision=answer.decision,
                    accepted=False,
                    reason=reason,
                )
            )
            logger.warning("gate: refused decision by %s: %s", answer.approver[:64], reason)
            note = f"> **Refused:** {reason}. Allowed: {', '.join(sorted(allowed))}\n\n"
            continue
        attempts.append(
            GateAttempt(at=now, approver=answer.approver, decision=answer.decision, accepted=True)
        )
        logger.info("gate: %s by %s", answer.decision, answer.approver)
        return GateResult(
            approved=answer.decision == "approve",
            approver=answer.approver,
            comment=answer.comment,
            opened_at=opened,
            closed_at=now,
            attempts=attempts,
        )
    return GateResult(
        approved=False,
        opened_at=opened,
        closed_at=datetime.now(UTC),
        attempts=attempts,
        comment="too many refused decisions",
    )
