"""Command-center sign-off: a typed form in the Prefect UI, one-time codes, escalation.

The flow pauses with an :class:`ApprovalInput` form whose description shows exactly
what will run. A decision counts only if the approver is a command-center member and
the one-time code sent to the command-center channel matches; anything else is
refused, logged with who tried, and the gate stays open. Destructive plans need two
different approvers. Timeouts never approve: a watchdog reminds the approvers, then
the backup approvers, then closes the gate as ``expired``; if the alert resolves while
waiting the gate closes as ``cleared``. Nothing runs unless the result is approved.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Literal

from prefect import get_run_logger
from prefect.input import RunInput
from pydantic import BaseModel, Field

from inventory.models import GatePolicy, Inventory, RoleName
from tasks.gate_wait import wait_for_input
from tasks.gate_watch import GateWatch

Decision = Literal["approve", "reject", "expired", "cleared"]


class ApprovalInput(RunInput):
    decision: Decision = Field(
        description="approve or reject (expired / cleared are set by the system)"
    )
    approver: str = Field(description="your name in the inventory (command center)")
    code: str = Field(description="the one-time code sent to the command-center channel")
    comment: str = Field("", description="why")
    choice: str = Field(
        "",
        description="only where the plan offers choices (e.g. a restore point): the one "
        "you pick from the list above; empty = the plan's default",
    )


class GateAttempt(BaseModel):
    at: datetime
    approver: str
    decision: str
    code_valid: bool
    accepted: bool
    reason: str = ""


class GateResult(BaseModel):
    status: Literal["approved", "rejected", "expired", "cleared", "interrupted"]
    approvers: list[str] = Field(default_factory=list)
    comment: str = ""
    opened_at: datetime
    closed_at: datetime
    description: str = ""
    attempts: list[GateAttempt] = Field(default_factory=list)
    choice: str = ""
    """The approvers' pick among the plan's choices ("" = the plan's default)."""

    @property
    def approved(self) -> bool:
        return self.status == "approved"

    @property
    def approver(self) -> str | None:
        return ", ".join(self.approvers) or None

    @property
    def wait_s(self) -> float:
        return (self.closed_at - self.opened_at).total_seconds()


def new_code() -> str:
    """A short one-time code (6 digits) for the command-center channel."""
    return f"{secrets.randbelow(10**6):06d}"


def refusal(
    decision: str,
    who: str,
    code_valid: bool,
    allowed: set[str],
    approvers: list[str],
    choice: str = "",
    choices: list[str] | None = None,
    chosen: str = "",
) -> str:
    """Why a decision is refused ("" if it is accepted). Pure.

    ``choice`` must be one of ``choices`` (when given); a second approver may not pick
    differently from the first (``chosen``).
    """
    if who not in allowed:
        return f"{who!r} is not a command-center member"
    if not code_valid:
        return "wrong or used approval code"
    if decision not in ("approve", "reject"):
        return f"{decision!r} is set by the system only"
    if decision == "approve" and who in approvers:
        return f"{who} already approved; a second, different approver is needed"
    if decision == "approve" and choice:
        if choices is not None and choice not in choices:
            return f"choice {choice[:80]!r} is not one of the offered choices"
        if chosen and choice != chosen:
            return f"choice {choice[:80]!r} differs from the first approver's {chosen[:80]!r}"
    return ""


Notifier = Callable[[str, dict[str, str], str | None], None]
"""(event, fields, code or None) → sends; must never raise."""


def request_approval(
    description: str,
    inv: Inventory,
    policy: GatePolicy | None = None,
    notify: Notifier | None = None,
    two_person: bool = False,
    choices: list[str] | None = None,
) -> GateResult:
    """Wait for the command center's decision; see the module docstring.

    ``choices``: what an approver may pick in the form's ``choice`` field (e.g. restore
    points); the accepted pick is ``GateResult.choice``.
    """
    logger = get_run_logger()
    policy = policy or GatePolicy()
    allowed = {p.name for p in inv.members(RoleName.command_center)}
    opened = datetime.now(UTC)
    attempts: list[GateAttempt] = []
    approvers: list[str] = []
    send = notify or (lambda *_: None)
    code, nonce = new_code(), secrets.token_hex(16)
    send("gate_opened", {}, code)
    note = ""
    chosen = ""
    with GateWatch(policy, nonce, lambda ev, code_: send(ev, {}, code_), lambda: code) as watch:
        for n in range(1000):
            form = ApprovalInput.with_initial_data(
                description=note + description, decision="approve"
            )
            remaining = max(policy.abort_after_s - watch.elapsed(), 1)
            answer = wait_for_input(form, f"gate-{n}-{nonce[:6]}", remaining, policy.poll_s)
            now = datetime.now(UTC)

            def close(
                status: str,
                who: list[str],
                comment: str = answer.comment,
                _now: datetime = now,
                pick: str = "",
            ) -> GateResult:
                return GateResult(
                    status=status,
                    approvers=who,
                    comment=comment,  # type: ignore[arg-type]
                    opened_at=opened,
                    closed_at=_now,
                    description=description,
                    attempts=attempts,
                    choice=pick,
                )

            system = hmac.compare_digest(answer.code.encode(), nonce.encode())
            if answer.decision in ("expired", "cleared") and system:
                logger.warning("gate closed: %s", answer.decision)
                return close(answer.decision, approvers)
            who = answer.approver.strip()[:64]
            valid = hmac.compare_digest(answer.code.strip().encode(), code.encode())
            pick = answer.choice.strip()
            reason = refusal(answer.decision, who, valid, allowed, approvers, pick, choices, chosen)
            attempts.append(
                GateAttempt(
                    at=now,
                    approver=who,
                    decision=answer.decision,
                    code_valid=valid,
                    accepted=not reason,
                    reason=reason,
                )
            )
            if reason:
                logger.warning("gate: refused %s by %s: %s", answer.decision, who, reason)
                note = f"> **Refused** ({now:%H:%M:%S} UTC): {reason}.\n\n"
                continue
            logger.info("gate: %s by %s", answer.decision, who)
            if answer.decision == "reject":
                return close("rejected", [who])
            approvers.append(who)
            chosen = chosen or pick
            if (policy.two_person or two_person) and len(approvers) < 2:
                code = new_code()  # one-time: the second approver gets a fresh code
                summary = f"Approved by {who}; a second approver is needed (two-person rule)."
                send("gate_opened", {"summary": summary}, code)
                note = f"> Approved by **{who}**. A second, different approver is needed.\n\n"
                continue
            return close("approved", approvers, pick=chosen)
    raise RuntimeError("gate: too many attempts")


__all__ = ["ApprovalInput", "GateAttempt", "GatePolicy", "GateResult", "request_approval"]
