"""`contingency report RUN`: an incident's report from this machine or from Prefect."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from tasks.report.summary import IncidentSummary


class FoundReport(BaseModel):
    run_id: str
    source: str
    """``file`` (written on this machine) or ``artifact`` (from the Prefect API)."""
    markdown: str
    summary: IncidentSummary | None = None


def read_report_artifact(client: Any, run_id: str) -> str | None:
    """The newest version of the incident's report artifact (sync client), if any."""
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
    from prefect.client.schemas.sorting import ArtifactSort

    from tasks.report.render import artifact_key

    arts = client.read_artifacts(
        artifact_filter=ArtifactFilter(
            key=ArtifactFilterKey(any_=[artifact_key(f"incident-{run_id}")])
        ),
        sort=ArtifactSort.CREATED_DESC,
        limit=1,
    )
    return arts[0].data if arts and isinstance(arts[0].data, str) else None


def fetch_report(run_id: str, path: Path) -> FoundReport | None:
    """The report (the newest version of its artifact, else the local file) and the
    incident's typed summary, read from the Prefect API the caller points at."""
    from tasks.prefect_api import get_client
    from tasks.report.summary import read_summaries

    try:
        uuid.UUID(run_id)
    except ValueError:
        return None
    with get_client(sync_client=True) as client:
        artifact = None if path.exists() else read_report_artifact(client, run_id)
        summary = read_summaries(client, [run_id]).get(run_id)
    if path.exists():
        markdown, source = path.read_text(encoding="utf-8"), "file"
    elif artifact is not None:
        markdown, source = artifact, "artifact"
    else:
        return None
    return FoundReport(run_id=run_id, source=source, markdown=markdown, summary=summary)
