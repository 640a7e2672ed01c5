"""`contingency review RUN …` and `contingency stats [--since …] [--plot FILE.png]`."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from contingency.cli.common import Json, StateDir, api, emit_json, err, out
from contingency.cli.common import settings_for as _settings


def _follow_up(text: str):  # type: ignore[no-untyped-def]
    from tasks.report.review import FollowUp

    parts = [p.strip() for p in text.split("|")]
    if len(parts) != 3:
        raise typer.BadParameter(f"--action {text[:60]!r}: expected 'what|owner|YYYY-MM-DD'")
    try:
        due = date.fromisoformat(parts[2])
    except ValueError:
        raise typer.BadParameter(f"--action: bad due date {parts[2][:20]!r} (YYYY-MM-DD)") from None
    return FollowUp(action=parts[0], owner=parts[1], due=due)


def review(
    run_id: Annotated[str, typer.Argument(help="the incident's flow run id")],
    category: Annotated[
        str,
        typer.Option(
            "--root-cause-category",
            "--category",
            help="software, hardware, network, data, human, external, unknown",
        ),
    ],
    root_cause: Annotated[str, typer.Option(help="what caused it")],
    reviewer: Annotated[str, typer.Option("--as", help="your name in the inventory")] = "",
    went_well: Annotated[str, typer.Option(help="what went well")] = "",
    went_badly: Annotated[str, typer.Option(help="what went badly")] = "",
    action: Annotated[
        list[str] | None, typer.Option(help="'what|owner|YYYY-MM-DD' (repeatable)")
    ] = None,
    state_dir: StateDir = None,
) -> None:
    """Append a post-incident review (root cause, lessons, follow-ups) to the report."""
    from pydantic import ValidationError

    from inventory.loader import load_inventory
    from tasks.report.review import ReviewError, ReviewInput, append_review

    settings = _settings(state_dir)
    try:
        form = ReviewInput(
            reviewer=reviewer, category=category, root_cause=root_cause, went_well=went_well,
            went_badly=went_badly, actions=[_follow_up(a) for a in action or []],
        )  # fmt: skip
    except ValidationError as exc:
        for e in exc.errors():
            err.print(
                f"{'.'.join(str(x) for x in e['loc'])}: {e['msg']}", markup=False, soft_wrap=True
            )
        raise typer.Exit(2) from None
    try:
        with api(settings):
            inv = load_inventory(settings.inventory_path())
            done = append_review(run_id, form, inv, settings.reports_path, settings)
    except ReviewError as exc:
        err.print(str(exc), markup=False, soft_wrap=True)
        raise typer.Exit(1) from None
    out.print(
        f"review appended to {done.path} and to the report artifact", markup=False, soft_wrap=True
    )
    if done.report_copy is not None:
        line = (
            f"copied to {done.report_copy.url}"
            if done.report_copy.ok
            else f"S3 copy failed: {done.report_copy.error}"
        )
        (out if done.report_copy.ok else err).print(line, markup=False, soft_wrap=True)


def _follow_up_counts() -> tuple[int, int] | None:
    """(open, overdue) follow-up actions; None if they cannot be read."""
    from tasks.prefect_api import get_client
    from tasks.report.actions import ActionState, read_all

    try:
        with get_client(sync_client=True) as client:
            found = [a for a in read_all(client) if a.state is ActionState.open]
    except Exception:  # noqa: BLE001 - the incident figures stand without them
        return None
    return len(found), sum(a.overdue() for a in found)


def _drills_since(start: datetime) -> list[list[str]]:
    """Restore-drill and game-day results since ``start`` (rows newest first)."""
    from contingency.cli.plandoc import latest_drill_results

    try:
        rows = latest_drill_results()
    except Exception as exc:  # noqa: BLE001 - the incidents are still shown
        err.print(f"drill results unavailable ({type(exc).__name__})")
        return []
    since = start.strftime("%Y-%m-%d %H:%M")
    return [r for r in rows if r[1] >= since]


def stats(
    since: Annotated[str, typer.Option(help="7d, 12h, 30m or an ISO date")] = "30d",
    plot_file: Annotated[
        Path | None, typer.Option("--plot", help="write time to recover over time (PNG)")
    ] = None,
    as_json: Json = False,
    state_dir: StateDir = None,
) -> None:
    """Per plan: incidents (by severity level), success rate, time to recover, repeats,
    gate timeouts."""
    from contingency.cli.stats import aggregate, collect, drill_trends, parse_since, plot

    try:
        start = parse_since(since)
    except ValueError as exc:
        err.print(str(exc), markup=False, soft_wrap=True)
        raise typer.Exit(2) from None
    with api(_settings(state_dir)):
        records = collect(start)
        follow_ups = _follow_up_counts()
        drills = _drills_since(start)
    if as_json:
        emit_json([s.model_dump(mode="json") for s in aggregate(records)])
        return
    table = Table(
        "plan", "incidents", "severity", "success", "TTR median", "TTR p90", "repeat alerts",
        "gates timed out", "drills", title=f"Incidents since {start:%Y-%m-%d %H:%M} UTC",
    )  # fmt: skip

    def secs(v: float | None) -> str:
        return "—" if v is None else f"{v:.1f}s"

    for s in aggregate(records):
        table.add_row(
            s.plan, str(s.incidents),
            " ".join(f"{k or '—'}:{n}" for k, n in s.by_severity.items()),
            f"{s.success_rate:.0%}", secs(s.ttr_median_s),
            secs(s.ttr_p90_s), str(s.repeats), str(s.gates_timed_out), str(s.drills),
        )  # fmt: skip
    out.print(table if records else f"no incidents since {start:%Y-%m-%d %H:%M} UTC")
    if follow_ups is not None:
        open_n, overdue = follow_ups
        out.print(f"follow-up actions: {open_n} open, {overdue} overdue (`contingency actions`)")
    if drills:
        trends = Table(
            "drill", "runs", "passed", "latest", "oldest → newest (+ pass, ~ partial, - fail)",
            title=f"Drills and game days since {start:%Y-%m-%d %H:%M} UTC",
        )  # fmt: skip
        for d in drill_trends(drills):
            trends.add_row(d.drill, str(d.runs), str(d.passed), d.latest, d.history)
        out.print(trends)
    if plot_file is not None:
        n = plot(records, plot_file)
        out.print(f"wrote {plot_file} ({n} incidents with a time to recover)")
