"""Incident timeline and report: a markdown Prefect artifact plus a file copy."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel, Field

from inventory.secrets import redact


class Event(BaseModel):
    at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    kind: str
    text: str


class Timeline(BaseModel):
    events: list[Event] = Field(default_factory=list)

    def add(self, kind: str, text: str, at: datetime | None = None) -> Event:
        event = Event(kind=kind, text=text, at=at or datetime.now(UTC))
        self.events.append(event)
        return event


def _fmt(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + "Z"


def _cell(text: str) -> str:
    return redact(text).replace("|", "\\|").replace("\n", " ")


def render_report(
    title: str,
    summary: dict[str, str],
    timeline: Timeline,
    commands: list[dict[str, object]],
    sections: dict[str, str] | None = None,
) -> str:
    """Render the incident report as markdown (secrets redacted)."""
    out = [f"# {title}", ""]
    out += [f"- **{k}**: {_cell(str(v))}" for k, v in summary.items()]
    out += ["", "## Timeline", "", "| time (UTC) | event | detail |", "|---|---|---|"]
    out += [f"| {_fmt(e.at)} | {e.kind} | {_cell(e.text)} |" for e in timeline.events]
    out += ["", "## Commands", ""]
    if commands:
        out += ["| host | command | exit | duration (s) | output (tail) |", "|---|---|---|---|---|"]
        for c in commands:
            tail = str(c.get("stdout_tail") or "").strip().splitlines()[-1:] or [""]
            out.append(
                f"| {c['host']} | `{_cell(str(c['command']))}` | {c['exit_code']} | "
                f"{float(c['duration_s']):.3f} | {_cell(tail[0][:120])} |"
            )
    else:
        out.append("No command was run.")
    for heading, body in (sections or {}).items():
        out += ["", f"## {heading}", "", redact(body)]
    return "\n".join(out) + "\n"


def artifact_key(text: str) -> str:
    """Prefect artifact keys: lowercase letters, digits and dashes only."""
    return re.sub(r"-+", "-", re.sub(r"[^a-z0-9-]", "-", text.lower())).strip("-")[:100]


def publish_report(markdown: str, key: str, report_dir: Path, description: str = "") -> Path:
    """Write the report to ``report_dir/<key>.md`` and, inside a run, as an artifact."""
    from prefect.artifacts import create_markdown_artifact
    from prefect.context import FlowRunContext, TaskRunContext

    report_dir.mkdir(parents=True, exist_ok=True)
    path = report_dir / f"{key}.md"
    tmp = path.with_suffix(".md.tmp")
    tmp.write_text(markdown, encoding="utf-8")
    tmp.replace(path)
    if FlowRunContext.get() or TaskRunContext.get():
        create_markdown_artifact(markdown=markdown, key=artifact_key(key), description=description)
    return path
