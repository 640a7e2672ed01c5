"""Follow-up actions from reviews, tracked until done (整改措施落实).

Each follow-up of a review (``tasks/report/review.py``) becomes a Prefect variable
``contingency_action_<run>_<n>`` holding a :class:`TrackedAction` (JSON): what, who,
when it is due, its state and the last reminder. Variables live in the Prefect API, so
every machine sees the same list; ``contingency actions`` lists and closes them, the
reconciler reminds owners of actions due within a day or overdue (once a day), and
``contingency stats`` counts the overdue ones.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field

PREFIX = "contingency_action_"
TAG = "contingency-action"


class ActionState(StrEnum):
    open = "open"
    done = "done"
    dropped = "dropped"


class TrackedAction(BaseModel):
    id: str
    run_id: str
    action: str
    owner: str
    due: date
    state: ActionState = ActionState.open
    created: datetime = Field(default_factory=lambda: datetime.now(UTC))
    closed_at: datetime | None = None
    note: str = ""
    reminded: date | None = None

    def overdue(self, today: date | None = None) -> bool:
        return self.state is ActionState.open and self.due < (today or datetime.now(UTC).date())

    def needs_reminder(self, today: date) -> bool:
        """Open, due by tomorrow, and not reminded today."""
        return (
            self.state is ActionState.open
            and self.due <= today + timedelta(days=1)
            and self.reminded != today
        )


def action_id(run_id: str, action: str, owner: str, due: date) -> str:
    """``<run>-<digest>``: the same follow-up appended twice is one action."""
    digest = hashlib.sha256(f"{action}\n{owner}\n{due}".encode()).hexdigest()[:6]
    return f"{run_id.replace('-', '')[:12]}-{digest}"


def _name(aid: str) -> str:
    return PREFIX + aid.replace("-", "_")


def record(client: Any, run_id: str, follow_ups: list[Any]) -> list[TrackedAction]:
    """Track a review's follow-ups (sync client); an action already tracked (the same
    review appended twice) is kept as it is."""
    from prefect.client.schemas.actions import VariableCreate

    out = []
    for f in follow_ups:
        tracked = TrackedAction(
            id=action_id(run_id, f.action, f.owner, f.due),
            run_id=run_id,
            action=f.action,
            owner=f.owner,
            due=f.due,
        )
        existing = client.read_variable_by_name(_name(tracked.id))
        if existing is not None:
            out.append(TrackedAction.model_validate(existing.value))
            continue
        client.create_variable(
            VariableCreate(
                name=_name(tracked.id), value=tracked.model_dump(mode="json"), tags=[TAG]
            )
        )
        out.append(tracked)
    return out


def read_all(client: Any) -> list[TrackedAction]:
    """Every tracked action, soonest due first."""
    from tasks.prefect_api import read_records

    return sorted(read_records(client, PREFIX, TrackedAction), key=lambda a: (a.due, a.id))


def save(client: Any, action: TrackedAction) -> None:
    from prefect.client.schemas.actions import VariableUpdate

    client.update_variable(
        VariableUpdate(name=_name(action.id), value=action.model_dump(mode="json"), tags=[TAG])
    )


def find(client: Any, aid: str) -> TrackedAction | None:
    var = client.read_variable_by_name(_name(aid))
    return TrackedAction.model_validate(var.value) if var is not None else None
