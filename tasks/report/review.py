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
    append_review(run_id, review, inv, settings.reports_path, settings)
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from enum import StrEnum
from pathlib import Path
from uuid import UUID

from prefect.input import RunInput
from pydantic import BaseModel, Field

from inventory.errors import (
    ReviewError,
)
from inventory.models import Inventory
from inventory.secrets import redact
from inventory.settings import Settings
from tasks.report.actions import record as record_actions
from tasks.report.copies import ReportCopy, copy_report
from tasks.report.render import artifact_key


class RootCause(StrEnum):
    software = "software"
    hardware = "hardware"
    network = "network"
    data = "data"
    human = "human"
    external = "external"
    unknown = "unknown"


class FollowUp(BaseModel):
    action: str = Field(min_length=3, max_length=500, description="what will be done (整改措施)")
    owner: str = Field(description="a person in the inventory (负责人)")
    due: date = Field(description="due date, YYYY-MM-DD (截止日期)")


class ReviewInput(RunInput):
    reviewer: str = Field("", description="your name in the inventory, optional (复盘人)")
    category: RootCause = Field(description="root cause category (根本原因类别)")
    root_cause: str = Field(min_length=3, max_length=4000, description="what caused it (根本原因)")
    went_well: str = Field("", max_length=4000, description="what went well (处置得当之处)")
    went_badly: str = Field("", max_length=4000, description="what went badly (不足之处)")
    actions: list[FollowUp] = Field(
        default_factory=list, description="follow-up actions (整改措施)"
    )


def problems(review: ReviewInput, inv: Inventory) -> list[str]:
    """What is wrong with ``review`` for this inventory (empty: fine). Pure."""
    out = []
    known = ", ".join(sorted(inv.people)[:12])
    if review.reviewer and review.reviewer not in inv.people:
        out.append(f"reviewer {review.reviewer[:64]!r} is not a person in the inventory")
    for i, a in enumerate(review.actions, 1):
        if a.owner not in inv.people:
            out.append(f"action {i}: owner {a.owner[:64]!r} is not a person in the inventory")
    if out:
        out.append(f"people: {known}")
    return out


def _item(text: str) -> str:
    """Free text as one list item: continuation lines indented, never a new heading."""
    lines = [ln.rstrip() for ln in text.strip().splitlines() if ln.strip()]
    return "\n  ".join(lines) or "—"


def _cell(text: str) -> str:
    return " ".join(text.replace("|", "/").split())


def render_review(review: ReviewInput, at: datetime | None = None) -> str:
    at = at or datetime.now(UTC)
    lines = [
        f"## Review ({at:%Y-%m-%d %H:%M} UTC, by {review.reviewer or 'an unnamed reviewer'})",
        "",
        f"- **root cause** ({review.category.value}): {_item(review.root_cause)}",
        f"- **went well**: {_item(review.went_well)}",
        f"- **went badly**: {_item(review.went_badly)}",
        "",
    ]
    if review.actions:
        lines += ["| # | follow-up action | owner | due |", "|---|---|---|---|"]
        lines += [
            f"| {i} | {_cell(a.action)} | {a.owner} | {a.due:%Y-%m-%d} |"
            for i, a in enumerate(review.actions, 1)
        ]
    else:
        lines.append("No follow-up actions.")
    return redact("\n".join(lines)) + "\n"


def incident_report(run_id: str, reports_dir: Path) -> str:
    """The current report of incident ``run_id``: the file in ``reports_dir`` or, if this
    machine has none, the latest artifact version. Raises ReviewError (unknown run, not
    an incident, still running, no report) — asks the Prefect API."""
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
    from prefect.client.schemas.sorting import ArtifactSort
    from prefect.exceptions import ObjectNotFound

    from tasks.prefect_api import get_client

    try:
        uid = UUID(run_id)
    except ValueError:
        raise ReviewError(f"{run_id[:64]!r} is not a flow run id (a UUID)") from None
    with get_client(sync_client=True) as client:
        try:
            run = client.read_flow_run(uid)
        except ObjectNotFound:
            raise ReviewError(f"unknown run {run_id}: Prefect has no such flow run") from None
        flow_name = client.read_flow(run.flow_id).name
        if flow_name != "incident":
            raise ReviewError(f"run {run_id} is a {flow_name!r} run, not an incident")
        if run.state is None or not run.state.is_final():
            state = run.state.name if run.state else "not started"
            raise ReviewError(f"incident {run_id} is still {state}; review it once it ends")
        path = reports_dir / f"incident-{run_id}.md"
        if path.exists():
            return path.read_text(encoding="utf-8")
        arts = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[f"incident-{run_id}"])),
            sort=ArtifactSort.CREATED_DESC,
            limit=1,
        )
    if not arts:
        raise ReviewError(f"incident {run_id} has no report (not in {reports_dir} nor Prefect)")
    return str(arts[0].data or "")


class Appended(BaseModel):
    path: Path
    report_copy: ReportCopy | None = None
    """The S3 copy of the reviewed report, if report upload is configured."""


def append_review(
    run_id: str,
    review: ReviewInput,
    inv: Inventory,
    reports_dir: Path,
    settings: Settings | None = None,
) -> Appended:
    """Validate the review and append it to the incident's report: a new version of the
    ``incident-<run>`` artifact, the file, and the S3 copy if configured (a failed copy is
    listed under the review and returned, never raised). Raises ReviewError."""
    from prefect.client.schemas.actions import ArtifactCreate

    from tasks.prefect_api import get_client

    if bad := problems(review, inv):
        raise ReviewError("; ".join(bad))
    name = f"incident-{run_id}"
    base = incident_report(run_id, reports_dir).rstrip("\n") + "\n\n" + render_review(review)
    copy = copy_report(f"{name}.md", base, settings) if settings else None
    text = base + (copy.as_markdown() if copy else "")
    with get_client(sync_client=True) as client:
        client.create_artifact(
            ArtifactCreate(
                key=artifact_key(name),
                type="markdown",
                data=text,
                description=f"reviewed by {review.reviewer or 'an unnamed reviewer'}: "
                f"{review.category.value}",
                flow_run_id=UUID(run_id),
            )
        )
        record_actions(client, run_id, review.actions)  # tracked until done
    reports_dir.mkdir(parents=True, exist_ok=True)
    path = reports_dir / f"{name}.md"
    tmp = path.with_suffix(".md.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    return Appended(path=path, report_copy=copy)
