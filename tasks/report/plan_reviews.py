"""The command center's periodic review and approval of the plan (预案评审), as records.

Each review is a Prefect variable ``contingency_plan_review_<id>`` (every machine sees the
same list): which version of the plan (``inventory/revisions.py``), when, by whom, and
their note. The next review is due ``interval_days`` after the last one; never reviewed
means due now. Pure but for the client calls."""

from __future__ import annotations

import hashlib
from datetime import date, timedelta
from typing import Any

from pydantic import BaseModel, Field

PREFIX = "contingency_plan_review_"


class PlanReview(BaseModel):
    id: str
    version: str
    date: date
    by: str
    note: str = Field("", max_length=1000)


class ReviewDue(BaseModel):
    last: PlanReview | None
    due: date
    overdue: bool
    days_left: int


def review_id(version: str, when: date, by: str) -> str:
    digest = hashlib.sha256(f"{version}|{when}|{by}".encode()).hexdigest()[:8]
    return f"{when:%Y%m%d}-{digest}"


def record(client: Any, review: PlanReview) -> bool:
    """Store ``review``; False if the same review is already recorded."""
    from tasks.prefect_api import create_record

    return create_record(client, PREFIX + review.id.replace("-", "_"), review, "plan-review")


def read_all(client: Any) -> list[PlanReview]:
    from tasks.prefect_api import read_records

    return sorted(read_records(client, PREFIX, PlanReview), key=lambda r: (r.date, r.id))


def next_due(reviews: list[PlanReview], today: date, interval_days: int) -> ReviewDue:
    """When the next review is due. Pure."""
    last = max(reviews, key=lambda r: (r.date, r.id)) if reviews else None
    due = last.date + timedelta(days=interval_days) if last else today
    return ReviewDue(
        last=last, due=due, overdue=due <= today if last is None else due < today,
        days_left=(due - today).days,
    )  # fmt: skip
