"""Training (培训) and drill participation as records: topic, date, trainer, attendees
(people of the inventory), a material link. Each session is a Prefect variable
``contingency_training_<id>`` — every machine sees the same list — and who is due
(never trained, or not within N days; likewise drilled) is computed from them. Pure but
for the three client calls."""

from __future__ import annotations

import hashlib
from datetime import date, timedelta
from typing import Any, Literal

from pydantic import BaseModel, Field

PREFIX = "contingency_training_"
Kind = Literal["training", "drill"]


class TrainingSession(BaseModel):
    id: str
    kind: Kind = "training"
    topic: str = Field(min_length=3, max_length=300)
    date: date
    trainer: str
    attendees: list[str] = Field(min_length=1)
    material: str = ""


class Due(BaseModel):
    person: str
    last_training: date | None
    last_drill: date | None
    training_due: bool
    drill_due: bool


def session_id(kind: str, topic: str, when: date, trainer: str) -> str:
    digest = hashlib.sha256(f"{kind}|{topic}|{when}|{trainer}".encode()).hexdigest()[:8]
    return f"{when:%Y%m%d}-{digest}"


def problems(session: TrainingSession, people: set[str]) -> list[str]:
    """What is wrong with ``session`` for these people (empty: fine). Pure."""
    out = []
    if session.trainer not in people:
        out.append(f"trainer {session.trainer[:64]!r} is not a person in the inventory")
    unknown = [a for a in session.attendees if a not in people]
    if unknown:
        out.append(f"attendees not in the inventory: {', '.join(a[:64] for a in unknown)}")
    if session.material and not session.material.startswith(("https://", "http://")):
        out.append("--material must be an http(s) link")
    return out


def record(client: Any, session: TrainingSession) -> bool:
    """Store ``session``; False if the same session is already recorded."""
    from tasks.prefect_api import create_record

    return create_record(client, PREFIX + session.id.replace("-", "_"), session, "training")


def read_all(client: Any) -> list[TrainingSession]:
    from tasks.prefect_api import read_records

    return sorted(read_records(client, PREFIX, TrainingSession), key=lambda s: (s.date, s.id))


def due(people: list[str], sessions: list[TrainingSession], today: date, days: int) -> list[Due]:
    """Everyone, with their last training and drill and whether either is older than
    ``days`` (or never happened). Pure."""
    since = today - timedelta(days=days)
    rows = []
    for person in sorted(people):

        def last(kind: str, who: str = person) -> date | None:
            dates = [s.date for s in sessions if s.kind == kind and who in s.attendees]
            return max(dates, default=None)

        trained, drilled = last("training"), last("drill")
        rows.append(
            Due(
                person=person,
                last_training=trained,
                last_drill=drilled,
                training_due=trained is None or trained < since,
                drill_due=drilled is None or drilled < since,
            )
        )
    return rows
