"""Incident timeline and report: a markdown Prefect artifact plus a file copy."""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from inventory.secrets import redact
from tasks.report.lang import word


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


OUTCOME_UNKNOWN = "outcome unknown — the command may have run"
"""How the report names a command whose exit status never came back."""
_OUTCOME_TEXT = {"ok": "ok", "failed": "failed", "timed_out": "timed out"}
_LAST_LINES = 5


def command_outcome(c: dict[str, object]) -> str:
    """``ok``/``failed``/``timed_out``/``unknown`` of a recorded command (a dumped
    `CommandResult`, or a plan's own dict with just ``exit_code``)."""
    if isinstance(c.get("outcome"), str):
        return str(c["outcome"])
    if c.get("timed_out"):
        return "timed_out"
    if c.get("exit_code") is None:
        return "unknown"
    return "ok" if c.get("exit_code") == 0 else "failed"


def _exit_text(c: dict[str, object], outcome: str) -> str:
    if c.get("exit_code") is not None:
        return str(c["exit_code"])
    if outcome in ("ok", "failed") and "outcome" in c:
        return "—"  # not a command (a transfer, an API or driver call, a probe): no status
    return "none (timed out)" if outcome == "timed_out" else "missing"


def _last_lines(text: object, n: int) -> list[str]:
    return [line[:200] for line in str(text or "").rstrip().splitlines()[-n:]]


def _unknown_note(c: dict[str, Any]) -> list[str]:
    """What an operator needs about a command that may have run: the why, the status
    (missing) and the last output received."""
    why = str(c.get("message") or OUTCOME_UNKNOWN)
    out = [
        "",
        f"**Outcome unknown** on {_cell(str(c['host']))}: `{_cell(str(c['command']))}` — "
        f"{_cell(why)}; exit status missing after {float(c['duration_s']):.3f}s. "
        "Check the host before acting again.",
    ]
    for stream in ("stdout", "stderr"):
        lines = _last_lines(c.get(f"{stream}_tail"), _LAST_LINES)
        if lines:
            body = redact("\n".join(lines)).replace("~~~", "~ ~ ~")
            out += ["", f"Last {stream} received:", "", "~~~", body, "~~~"]
    if not any(_last_lines(c.get(f"{s}_tail"), 1) for s in ("stdout", "stderr")):
        out += ["", "No output was received before the connection was lost."]
    return out


def render_report(
    title: str,
    summary: dict[str, str],
    timeline: Timeline,
    commands: list[dict[str, Any]],
    sections: dict[str, str] | None = None,
    lang: str = "en",
) -> str:
    """Render the incident report as markdown (secrets redacted); ``lang`` zh gives the
    report's own words in Chinese (``tasks/report/lang.py``)."""

    def w(text: str) -> str:
        return word(text, lang)

    def row(*cells: str) -> str:
        return "| " + " | ".join(w(c) for c in cells) + " |"

    out = [f"# {title}", ""]
    out += [f"- **{w(k)}**: {_cell(w(str(v)))}" for k, v in summary.items()]
    out += ["", f"## {w('Timeline')}", "", row("time (UTC)", "event", "detail"), "|---|---|---|"]
    out += [f"| {_fmt(e.at)} | {w(e.kind)} | {_cell(e.text)} |" for e in timeline.events]
    out += ["", f"## {w('Commands')}", ""]
    if commands:
        out += [
            row("host", "command", "outcome", "exit", "duration (s)", "output (tail)"),
            "|---|---|---|---|---|---|",
        ]
        notes: list[str] = []
        for c in commands:
            outcome = command_outcome(c)
            tail = (
                _last_lines(c.get("stdout_tail"), 1) or _last_lines(c.get("stderr_tail"), 1)
            ) or [""]
            shown = OUTCOME_UNKNOWN if outcome == "unknown" else _OUTCOME_TEXT.get(outcome, outcome)
            out.append(
                f"| {c['host']} | `{_cell(str(c['command']))}` | {_cell(shown)} | "
                f"{_exit_text(c, outcome)} | {float(c['duration_s']):.3f} | "
                f"{_cell(tail[0][:120])} |"
            )
            if outcome == "unknown":
                notes += _unknown_note(c)
        out += notes
    else:
        out.append(w("No command was run."))
    for heading, body in (sections or {}).items():
        out += ["", f"## {w(heading)}", "", redact(body)]
    return "\n".join(out) + "\n"


def artifact_key(text: str) -> str:
    """Prefect artifact keys: lowercase letters, digits and dashes only."""
    return re.sub(r"-+", "-", re.sub(r"[^a-z0-9-]", "-", text.lower())).strip("-")[:100]


def publish_report(markdown: str, key: str, report_dir: Path, description: str = "") -> Path:
    """Write the report to ``report_dir/<key>.md`` and, inside a run, as an artifact."""
    from prefect.artifacts import create_markdown_artifact
    from prefect.context import FlowRunContext, TaskRunContext

    from tasks.prefect_api import retry_api

    path = report_dir / f"{key}.md"
    tmp = path.with_suffix(".md.tmp")
    try:  # a full or broken state disk must not cost the artifact (nor the pages)
        report_dir.mkdir(parents=True, exist_ok=True)
        tmp.write_text(markdown, encoding="utf-8")
        tmp.chmod(0o600)  # owner only, like everything under the state dir
        tmp.replace(path)
    except OSError as exc:
        logging.getLogger("contingency.report").error(
            "report file %s could not be written (%s); the artifact holds the report", path, exc
        )
        tmp.unlink(missing_ok=True)
    if FlowRunContext.get() or TaskRunContext.get():
        retry_api(
            lambda: create_markdown_artifact(
                markdown=markdown, key=artifact_key(key), description=description
            ),
            "publish the report artifact",
        )
    return path
