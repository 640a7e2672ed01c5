"""The acknowledgement ladder, pure: which escalation step is due, who it pages, and the
report's section. The reconciler climbs it (``contingency/runtime/escalation.py``).

Every incident opens with the tag ``await-ack``; ``contingency ack RUN --as NAME`` adds
``acked-by:NAME`` and ``acked-at:EPOCH``; each step taken is ``escalated:N``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from inventory.models import Inventory, RoleName
from inventory.severity import SeverityLevel, levels_of

AWAIT_ACK = "await-ack"
AWAIT_TRIAGE = "await-triage"
"""A reported problem paused at tech support's triage form (tasks/gate/triage.py); not a
sign-off: ``contingency gates`` skips it."""
ACKED_BY = "acked-by:"
ACKED_AT = "acked-at:"
STEP = "escalated:"
STEPS = ("the next person on duty", "the backup", "the command center")
STEP_ARTIFACT = "escalation-"
"""Key prefix of a step's deliveries, kept on a run that had not ended yet."""


def due_step(elapsed_min: float, ladder: list[float]) -> int:
    """How many steps of ``ladder`` are due after ``elapsed_min`` (0 to 3). Pure."""
    total, due = 0.0, 0
    for minutes in ladder[: len(STEPS)]:
        total += minutes
        if elapsed_min >= total:
            due += 1
    return due


def tag_value(tags: list[str], prefix: str) -> str:
    return next((t[len(prefix) :] for t in tags if t.startswith(prefix)), "")


def level_of(tags: list[str], inv: Inventory) -> SeverityLevel:
    levels = levels_of(inv)
    name = tag_value(tags, "severity:")
    return next((lv for lv in levels if lv.name == name), levels[-1])


def step_people(step: int, inv: Inventory, at: datetime) -> tuple[RoleName, list[str] | None]:
    """Who step ``step`` (1-3) pages: ``(role, people)``; ``people`` None: the whole role."""
    from inventory.duty import on_duty

    if step == 1:
        roster = inv.rosters.get(RoleName.operations.value)
        if roster is not None:
            shift = on_duty(roster, at)
            return RoleName.operations, [shift.next_person or shift.person]
        return RoleName.operations, [p.name for p in inv.members(RoleName.operations)]
    if step == 2:
        return RoleName.command_center, [
            p.name for p in inv.members(RoleName.command_center) if p.backup
        ]
    return RoleName.command_center, None


def acknowledged(tags: list[str]) -> tuple[str, datetime] | None:
    who, at = tag_value(tags, ACKED_BY), tag_value(tags, ACKED_AT)
    if not who:
        return None
    try:
        when = datetime.fromtimestamp(float(at), UTC)
    except ValueError:
        when = datetime.now(UTC)
    return who, when


def ladder_markdown(run: Any, inv: Inventory, deliveries: list[str] | None = None) -> str:
    """The report section: the level's ladder, the steps taken, the acknowledgement;
    ``deliveries``: each step's notification table, where the run had them."""
    tags = list(run.tags)
    level = level_of(tags, inv)
    taken = int(tag_value(tags, STEP) or 0)
    start = run.start_time or run.expected_start_time
    lines = [
        f"Severity {level.name}: escalation after "
        + ", ".join(f"{m:g} min" for m in level.escalation_min[: len(STEPS)])
        + " without an acknowledgement (next person on duty, backup, command center)."
    ]
    total = 0.0
    for n, minutes in enumerate(level.escalation_min[: len(STEPS)], 1):
        total += minutes
        if n <= taken and start is not None:
            at = start + timedelta(minutes=total)
            lines.append(f"- step {n} (~{at:%H:%M:%S} UTC): paged {STEPS[n - 1]}")
    ack = acknowledged(tags)
    if ack is not None:
        who, when = ack
        after = f" ({(when - start).total_seconds() / 60:.1f} min after the start)" if start else ""
        lines.append(f"- acknowledged by **{who}** at {when:%H:%M:%S} UTC{after}")
    elif AWAIT_ACK in tags:
        lines.append("- not acknowledged yet: `contingency ack RUN --as NAME`")
    for table in deliveries or []:
        lines += ["", table]
    return "\n".join(lines)
