"""Acknowledgement and escalation: an incident nobody acknowledges climbs the ladder.

Every incident opens with the tag ``await-ack`` (flows/incident.py); its pages ask for an
acknowledgement (``contingency ack RUN --as NAME``). The reconciler's pass calls
``escalate`` (one step per incident per pass). Its severity level's ``escalation_min``
``[a, b, c]`` is the ladder, counted from the run's start:

- after ``a`` minutes: the operations roster's next person (every operations member
  when there is no roster) is paged;
- after ``a + b``: the command center's backup members (``backup: true``);
- after ``a + b + c``: the command center (its channel and every member).

Each step is a run tag ``escalated:N``, so several reconcilers never page a step twice.
An incident that recovered on its own (Completed) or was cancelled needs no
acknowledgement: its ``await-ack`` tag is dropped. Steps taken after the incident's run
ended are appended to its report; earlier ones are in the report the run writes.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from inventory.models import Inventory
from inventory.severity import SeverityLevel
from tasks.escalation import (
    AWAIT_ACK,
    STEP,
    STEP_ARTIFACT,
    STEPS,
    acknowledged,
    due_step,
    level_of,
    step_people,
    tag_value,
)
from tasks.prefect_api import run_link

log = logging.getLogger("contingency.runtime.escalation")


def escalate(client: Any, inv_loader: Any, now: datetime | None = None) -> list[str]:
    """One pass over incidents awaiting an acknowledgement; what it did."""
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterExpectedStartTime,
        FlowRunFilterTags,
    )

    now = now or datetime.now(UTC)
    runs = client.read_flow_runs(
        flow_run_filter=FlowRunFilter(
            tags=FlowRunFilterTags(all_=["incident", AWAIT_ACK]),
            expected_start_time=FlowRunFilterExpectedStartTime(after_=now - timedelta(days=2)),
        ),
        limit=200,
    )
    if not runs:
        return []
    inv: Inventory = inv_loader()
    done = []
    for run in runs:
        tags = list(run.tags)
        state = run.state
        if state is not None and (state.is_completed() or state.is_cancelled()):
            client.update_flow_run(run.id, tags=sorted(set(tags) - {AWAIT_ACK}))
            continue  # recovered on its own, or called off: nobody needs to take it
        if acknowledged(tags) is not None or (run.parameters or {}).get("dry_run"):
            continue
        start = run.start_time or run.expected_start_time
        if start is None:
            continue
        level = level_of(tags, inv)
        taken = int(tag_value(tags, STEP) or 0)
        due = due_step((now - start).total_seconds() / 60, level.escalation_min)
        if due <= taken:
            continue
        step = taken + 1
        # the tag first: a crash between the two loses a page, never sends one twice
        kept = [t for t in tags if not t.startswith(STEP)]
        client.update_flow_run(run.id, tags=sorted({*kept, f"{STEP}{step}"}))
        deliveries = _page(run, inv, level, step, now)
        done.append(f"{run.name}: no acknowledgement; escalated to {STEPS[step - 1]}")
        if state is not None and state.is_final():
            append_section(client, run, f"Escalation step {step}", deliveries)
        else:  # the run's own report lists it (flows/incident.py reads these artifacts)
            _keep_for_the_report(client, run, step, deliveries)
    return done


def _keep_for_the_report(client: Any, run: Any, step: int, deliveries: str) -> None:
    from prefect.client.schemas.actions import ArtifactCreate

    client.create_artifact(
        ArtifactCreate(
            key=f"{STEP_ARTIFACT}{str(run.id)[:8]}-{step}", type="markdown",
            data=f"Step {step}:\n\n{deliveries}", description=f"escalation step {step}",
            flow_run_id=run.id,
        )
    )  # fmt: skip


def _page(run: Any, inv: Inventory, level: SeverityLevel, step: int, now: datetime) -> str:
    from inventory.settings import get_settings
    from tasks.notify import Pager

    labels = ((run.parameters or {}).get("alert") or {}).get("labels") or {}
    role, people = step_people(step, inv, now)
    settings = get_settings()
    pager = Pager(
        inv,
        settings.language,
        {
            "alert": labels.get("alertname", run.name),
            "target": tag_value(list(run.tags), "target:") or "?",
            "severity": level.label(settings.language),
            "waited": _waited((now - (run.start_time or now)).total_seconds()),
            "step": STEPS[step - 1],
            "run_id": str(run.id),
            "link": run_link(run.id),
        },
        drill=labels.get("drill") == "true",
    )
    if people is None:
        pager.event("ack_escalation", roles=(role,))
    else:
        pager.people_event("ack_escalation", role, people)
    text = pager.as_markdown()
    log.warning("incident %s not acknowledged: step %d (%s)", run.id, step, STEPS[step - 1])
    return text


def _waited(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min"


def append_section(
    client: Any, run: Any, title: str, text: str, reports: Path | None = None
) -> None:
    """A section at the end of an ended incident's report (artifact and the file in
    ``reports``, default the configured reports directory)."""
    from prefect.client.schemas.actions import ArtifactCreate

    from contingency.cli.reports import read_report_artifact
    from inventory.settings import get_settings
    from tasks.report.render import artifact_key

    path = (reports or get_settings().reports_path) / f"incident-{run.id}.md"
    base = path.read_text(encoding="utf-8") if path.exists() else None
    base = base or read_report_artifact(client, str(run.id))
    if base is None:
        return
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S")
    text = f"{base.rstrip()}\n\n## {title} ({stamp} UTC)\n\n{text}\n"
    client.create_artifact(
        ArtifactCreate(
            key=artifact_key(f"incident-{run.id}"), type="markdown", data=text,
            description=title, flow_run_id=run.id,
        )
    )  # fmt: skip
    if path.exists():
        tmp = path.with_suffix(f".md.{time.monotonic_ns()}.tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.chmod(0o600)
        tmp.replace(path)
