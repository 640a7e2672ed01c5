"""Alerts an open incident absorbed (same cause): written by the intake's dispatcher as
table artifacts ``absorbed-<run id>`` (one version per batch), read back by the incident
flow for its closing page ("+37 related alerts") and its report.

A batch written twice (the intake killed between writing and marking it) is listed
once: rows are de-duplicated by (fingerprint, start).
"""

from __future__ import annotations

import json
import logging
from typing import Any

from pydantic import BaseModel

from inventory.alert import Alert

log = logging.getLogger("contingency.report")
KEY_PREFIX = "absorbed-"
PAGE = 200


def related_key(run_id: str) -> str:
    return f"{KEY_PREFIX}{run_id}"


class RelatedAlert(BaseModel):
    fingerprint: str
    alert: str
    target: str = ""
    severity: str = ""
    starts_at: str = ""
    received_at: str = ""
    source: str = ""
    group: str = ""

    @classmethod
    def of(cls, alert: Alert) -> RelatedAlert:
        labels = alert.labels
        target = next(
            (labels[k] for k in ("service", "host", "link", "dataset", "target") if k in labels),
            "",
        )
        return cls(
            fingerprint=alert.fingerprint,
            alert=alert.name[:120],
            target=target[:120],
            severity=labels.get("severity", "")[:40],
            starts_at=alert.starts_at.isoformat(),
            received_at=alert.received_at.isoformat(),
            source=alert.source,
            group=alert.group[:200],
        )


def absorbed_artifact(run_id: str, alerts: list[Alert]) -> Any:
    from prefect.client.schemas.actions import ArtifactCreate

    rows = [RelatedAlert.of(a).model_dump() for a in alerts]
    return ArtifactCreate(
        key=related_key(run_id),
        type="table",
        data=json.dumps(rows),
        description=f"{len(rows)} related alert(s) joined this incident",
        flow_run_id=run_id,
    )


def parse_rows(data: object) -> list[RelatedAlert]:
    try:
        rows = json.loads(data) if isinstance(data, str) else data
        return [RelatedAlert.model_validate(r) for r in rows] if isinstance(rows, list) else []
    except (ValueError, TypeError) as exc:
        log.warning("unreadable related alerts: %s", type(exc).__name__)
        return []


def read_related(run_id: str) -> list[RelatedAlert]:
    """Every alert absorbed into ``run_id`` so far, once each, oldest first."""
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
    from prefect.client.schemas.sorting import ArtifactSort

    from tasks.prefect_api import get_client

    seen: dict[tuple[str, str], RelatedAlert] = {}
    with get_client(sync_client=True) as client:
        offset = 0
        while True:
            page = client.read_artifacts(
                artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[related_key(run_id)])),
                sort=ArtifactSort.CREATED_DESC,
                limit=PAGE,
                offset=offset,
            )
            for art in page:
                for row in parse_rows(art.data):
                    seen.setdefault((row.fingerprint, row.starts_at), row)
            if len(page) < PAGE:
                break
            offset += PAGE
    return sorted(seen.values(), key=lambda r: (r.received_at, r.fingerprint))


def related_markdown(rows: list[RelatedAlert]) -> str:
    """The report section: every absorbed alert, closed with this incident."""
    lines = [
        f"{len(rows)} alert(s) with the same cause joined this incident instead of starting "
        "their own; they are closed with it. One still firing after this incident ends "
        "becomes an incident of its own.",
        "",
        "| alert | target | severity | started (UTC) | received (UTC) | source | group |",
        "|---|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {_cell(r.alert)} | {_cell(r.target)} | {_cell(r.severity)} | {r.starts_at[:19]} | "
        f"{r.received_at[:19]} | {r.source} | {_cell(r.group[:60])} |"
        for r in rows
    ]
    return "\n".join(lines)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ") or "—"
