"""Command-center sign-off: a typed form in the Prefect UI, one-time codes, escalation.

The flow pauses with an :class:`ApprovalInput` form whose description shows exactly
what will run. Every command-center member with a personal channel (their own
``notify`` in the inventory) gets their OWN one-time code there — never on the shared
role channel, which only hears that a sign-off is needed. A decision counts only if the
approver is a command-center member and the code is the one issued to that person for
this gate (single use); anything else is refused, logged with who tried, and the gate
stays open. A member without a personal channel cannot sign off. Destructive plans need
two different approvers, each with their own code: after the first approval the others
get fresh codes. Timeouts never approve: a watchdog reminds the approvers, then
the backup approvers, then closes the gate as ``expired``; if the alert resolves while
waiting the gate closes as ``cleared``. Nothing runs unless the result is approved.
"""

from __future__ import annotations

import hmac
import secrets
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Literal

from prefect import get_run_logger
from prefect.input import RunInput
from pydantic import BaseModel, Field

from inventory.models import GatePolicy, Inventory, RoleName
from tasks.gate.wait import wait_for_input
from tasks.gate.watch import GateWatch
from tasks.notify import personal_channels

Decision = Literal["approve", "reject", "expired", "cleared"]


class ApprovalInput(RunInput):
    decision: Decision = Field(
        description="approve or reject (批准/驳回); expired / cleared are set by the system"
    )
    approver: str = Field(description="your name in the inventory, command center (审批人)")
    code: str = Field(description="the one-time code sent to you personally (一次性审批码)")
    comment: str = Field("", description="why (审批意见)")
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


class SignOff(BaseModel):
    """One accepted decision: who, the channels (secret NAMES) their code went to, when
    the code was sent and when the decision came."""

    person: str
    decision: str
    channels: list[str] = Field(default_factory=list)
    sent_at: datetime
    decided_at: datetime


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
    signoffs: list[SignOff] = Field(default_factory=list)

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
    """A short one-time code (6 digits) for one approver's own channel."""
    return f"{secrets.randbelow(10**6):06d}"


def no_channel_reason(who: str) -> str:
    return (
        f"{who} has no personal notification channel (person-level notify in the "
        "inventory), so no code can be issued to them: they cannot sign off"
    )


def code_check(who: str, code: str, issued: dict[str, str]) -> str:
    """Return "" if ``code`` is the one-time code issued to ``who``, else why not. Pure;
    compares in constant time against every issued code."""
    given = code.strip().encode()
    mine = False
    other = False
    for person, issued_code in issued.items():
        match = hmac.compare_digest(given, issued_code.encode())
        if person == who:
            mine = match
        else:
            other = other or match
    if mine:
        return ""
    if other:
        return f"code was not issued to {who}"
    return "wrong or used approval code"


def refusal(
    decision: str,
    who: str,
    code_valid: bool,
    allowed: set[str],
    approvers: list[str],
    choice: str = "",
    choices: list[str] | None = None,
    chosen: str = "",
    code_reason: str = "",
    reachable: set[str] | None = None,
) -> str:
    """Why a decision is refused ("" if it is accepted). Pure.

    ``code_reason`` says why the code is not valid (see :func:`code_check`);
    ``reachable``: the members with a personal channel (None: everyone). ``choice``
    must be one of ``choices`` (when given); a second approver may not pick
    differently from the first (``chosen``).
    """
    if who not in allowed:
        return f"{who!r} is not a command-center member"
    if reachable is not None and who not in reachable:
        return no_channel_reason(who)
    if decision == "approve" and who in approvers:
        return f"{who} already approved; a second, different approver is needed"
    if not code_valid:
        return code_reason or "wrong or used approval code"
    if decision not in ("approve", "reject"):
        return f"{decision!r} is set by the system only"
    if decision == "approve" and choice:
        if choices is not None and choice not in choices:
            return f"choice {choice[:80]!r} is not one of the offered choices"
        if chosen and choice != chosen:
            return f"choice {choice[:80]!r} differs from the first approver's {chosen[:80]!r}"
    return ""


Notifier = Callable[[str, dict[str, str], dict[str, str]], None]
"""(event, fields, person → one-time code) → sends each code to its person's own
channels only (the role channels get the notice without codes); must never raise."""


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
    members = [p.name for p in inv.members(RoleName.command_center)]
    allowed = set(members)
    reach = {name: personal_channels(inv, name) for name in members}
    reachable = {name for name, ch in reach.items() if ch}
    opened = datetime.now(UTC)
    attempts: list[GateAttempt] = []
    approvers: list[str] = []
    signoffs: list[SignOff] = []
    send = notify or (lambda *_: None)
    issued: dict[str, tuple[str, datetime]] = {}  # person → (their code, when sent)
    lock = threading.Lock()  # the watchdog thread reads the codes for its reminders

    def current() -> dict[str, str]:
        with lock:
            return {name: code for name, (code, _) in issued.items()}

    def issue(exclude: list[str]) -> dict[str, str]:
        """Fresh codes for every reachable member not in ``exclude`` (old ones die)."""
        now = datetime.now(UTC)
        fresh = {name: (new_code(), now) for name in sorted(reachable - set(exclude))}
        with lock:
            issued.clear()
            issued.update(fresh)
        return current()

    unreachable = sorted(allowed - reachable)
    header = ""
    if unreachable:
        header = (
            f"> Cannot sign off (no personal notification channel, so no code): "
            f"{', '.join(unreachable)}.\n\n"
        )
        if not reachable:
            header += "> **No command-center member can receive a code: nobody can sign off.**\n\n"
        logger.warning("gate: no personal channel for %s: they cannot sign off", unreachable)
    description = header + description
    nonce = secrets.token_hex(16)
    send("gate_opened", {}, issue([]))
    note = ""
    chosen = ""
    with GateWatch(policy, nonce, lambda ev, codes: send(ev, {}, codes), current) as watch:
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
                    signoffs=signoffs,
                )

            system = hmac.compare_digest(answer.code.encode(), nonce.encode())
            if answer.decision in ("expired", "cleared") and system:
                logger.warning("gate closed: %s", answer.decision)
                return close(answer.decision, approvers)
            who = answer.approver.strip()[:64]
            why_code = code_check(who, answer.code, current())
            valid = not why_code
            pick = answer.choice.strip()
            reason = refusal(
                answer.decision,
                who,
                valid,
                allowed,
                approvers,
                pick,
                choices,
                chosen,
                code_reason=why_code,
                reachable=reachable,
            )
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
            with lock:
                _, sent_at = issued.pop(who)  # single use
            signoffs.append(
                SignOff(
                    person=who,
                    decision=answer.decision,
                    channels=reach[who],
                    sent_at=sent_at,
                    decided_at=now,
                )
            )
            if answer.decision == "reject":
                return close("rejected", [who])
            approvers.append(who)
            chosen = chosen or pick
            if (policy.two_person or two_person) and len(approvers) < 2:
                # one-time: the others get fresh codes, each on their own channels
                summary = f"Approved by {who}; a second approver is needed (two-person rule)."
                send("gate_opened", {"summary": summary}, issue(approvers))
                note = f"> Approved by **{who}**. A second, different approver is needed.\n\n"
                continue
            return close("approved", approvers, pick=chosen)
    raise RuntimeError("gate: too many attempts")


__all__ = [
    "ApprovalInput",
    "GateAttempt",
    "GatePolicy",
    "GateResult",
    "SignOff",
    "code_check",
    "refusal",
    "request_approval",
]
