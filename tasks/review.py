"""Post-incident review (事后处理与总结): root cause, what went well and badly, follow-ups.

A review is a typed form (:class:`ReviewInput`): filled in the Prefect UI (the
``incident-review`` flow pauses on it) or given to ``contingency review RUN``. Either way
:func:`append_review` validates it against the inventory (owners must be people) and
appends it to the incident's report: the file in the state directory and a new version
of the report artifact (same key, so the UI shows the reviewed report).

    review = ReviewInput(category="software", root_cause="OOM after the 2.3 deploy",
                         went_well="restart in 40 s", went_badly="paged twice",
                         actions=[FollowUp(action="raise memory limit", owner="wang.fang",
                                           due=date(2026, 12, 5))])
    append_review(run_id, review, inv, reports_dir, reviewer="zhang.wei")
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from enum import StrEnum
from pathlib import Path
from uuid import UUID

from prefect.input import RunInput
from pydantic import BaseModel, Field

from inventory.models import Inventory
from inventory.secrets import redact
from tasks.errors import ContingencyError
from tasks.report import artifact_key


class RootCause(StrEnum):
    software = "software"
    hardware = "hardware"
    network = "network"
    data = "data"
    human = "human"
    external = "external"
    unknown = "unknown"


class FollowUp(BaseModel):
    action: str = Field(min_length=3, max_length=500, description="what will be done")
    owner: str = Field(description="a person in the inventory")
    due: date = Field(description="due date (YYYY-MM-DD)")


class ReviewInput(RunInput):
    reviewer: str = Field(description="your name in the inventory")
    category: RootCause = Field(description="root cause category")
    root_cause: str = Field(min_length=3, max_length=4000, description="what caused it")
    went_well: str = Field("", max_length=4000, description="what went well")
    went_badly: str = Field("", max_length=4000, description="what went badly")
    actions: list[FollowUp] = Field(default_factory=list, description="follow-up actions")


class ReviewError(ContingencyError):
    """The review cannot be accepted (unknown run, owner or reviewer); says why."""


def problems(review: ReviewInput, inv: Inventory) -> list[str]:
    """What is wrong with ``review`` for this inventory (empty: fine). Pure."""
    out = []
    if review.reviewer not in inv.people:
        out.append(f"reviewer {review.reviewer[:64]!r} is not a person in the inventory")
    for i, a in enumerate(review.actions, 1):
        if a.owner not in inv.people:
            out.append(f"action {i}: owner {a.owner[:64]!r} is not a person in the inventory")
    return out


def render_review(review: ReviewInput, at: datetime | None = None) -> str:
    at = at or datetime.now(UTC)
    lines = [
        f"## Review ({at:%Y-%m-%d %H:%M} UTC, by {review.reviewer})",
        "",
        f"- **root cause** ({review.category.value}): {review.root_cause}",
        f"- **went well**: {review.went_well or '—'}",
        f"- **went badly**: {review.went_badly or '—'}",
        "",
    ]
    if review.actions:
        lines += ["| # | follow-up action | owner | due |", "|---|---|---|---|"]
        lines += [
            f"| {i} | {a.action.replace('|', '/')} | {a.owner} | {a.due:%Y-%m-%d} |"
            for i, a in enumerate(review.actions, 1)
        ]
    else:
        lines.append("No follow-up actions.")
    return redact("\n".join(lines)) + "\n"


def append_review(run_id: str, review: ReviewInput, inv: Inventory, reports_dir: Path) -> Path:
    """Validate and append the review to the incident's report (file + artifact)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import ArtifactCreate

    if bad := problems(review, inv):
        raise ReviewError("; ".join(bad))
    path = reports_dir / f"incident-{run_id}.md"
    if not path.exists():
        raise ReviewError(f"no report for incident {run_id[:64]!r} in {reports_dir}")
    text = path.read_text(encoding="utf-8").rstrip("\n") + "\n\n" + render_review(review)
    tmp = path.with_suffix(".md.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    with get_client(sync_client=True) as client:
        client.create_artifact(
            ArtifactCreate(
                key=artifact_key(f"incident-{run_id}"),
                type="markdown",
                data=text,
                description=f"reviewed by {review.reviewer}: {review.category.value}",
                flow_run_id=UUID(run_id),
            )
        )
    return path
