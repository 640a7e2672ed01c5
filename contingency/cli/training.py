"""`contingency training`: training sessions and drills people took part in (培训与演练),
and who is due."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated

import typer
from rich.table import Table

from contingency.cli.common import Json, StateDir, api, emit_json, fail, out, settings_for

training_app = typer.Typer(
    help="Training (培训) and drill participation: record sessions, list them, who is due.",
    no_args_is_help=True,
)


@training_app.command("add")
def training_add(
    topic: Annotated[str, typer.Option(help="what was trained or drilled")],
    trainer: Annotated[str, typer.Option(help="who gave it (a person in the inventory)")],
    attendee: Annotated[list[str], typer.Option(help="a person who took part (repeat the option)")],
    when: Annotated[str, typer.Option("--date", help="YYYY-MM-DD; default today")] = "",
    kind: Annotated[str, typer.Option(help="training or drill")] = "training",
    material: Annotated[str, typer.Option(help="a link to the material (http/https)")] = "",
    state_dir: StateDir = None,
) -> None:
    """Record a training session (or a drill people took part in)."""
    from inventory.loader import load_inventory
    from tasks.prefect_api import get_client
    from tasks.report.training import TrainingSession, problems, record, session_id

    if kind not in ("training", "drill"):
        raise fail("--kind must be training or drill", 2)
    try:
        day = date.fromisoformat(when) if when else datetime.now(UTC).date()
    except ValueError:
        raise fail(f"--date: expected YYYY-MM-DD, got {when[:40]!r}", 2) from None
    settings = settings_for(state_dir)
    inv = load_inventory(settings.inventory_path())
    try:
        session = TrainingSession(
            id=session_id(kind, topic, day, trainer), kind=kind,  # type: ignore[arg-type]
            topic=topic.strip(), date=day, trainer=trainer, attendees=list(dict.fromkeys(attendee)),
            material=material.strip(),
        )  # fmt: skip
    except ValueError as exc:
        raise fail(f"training: {str(exc).splitlines()[0]}", 2) from None
    if bad := problems(session, set(inv.people)):
        raise fail("; ".join(bad), 2)
    with api(settings), get_client(sync_client=True) as client:
        new = record(client, session)
    said = "recorded" if new else "already recorded"
    out.print(f"{kind} {session.id} {said}: {session.topic} ({len(session.attendees)} people)",
              markup=False)  # fmt: skip


@training_app.command("list")
def training_list(as_json: Json = False, state_dir: StateDir = None) -> None:
    """Every recorded session, oldest first."""
    from tasks.prefect_api import get_client
    from tasks.report.training import read_all

    settings = settings_for(state_dir)
    with api(settings), get_client(sync_client=True) as client:
        found = read_all(client)
    if as_json:
        emit_json(found)
        return
    if not found:
        out.print("no training recorded")
        return
    table = Table("id", "kind", "date", "topic", "trainer", "attendees", title="Training (培训)")
    for s in found:
        table.add_row(s.id, s.kind, f"{s.date}", s.topic, s.trainer, ", ".join(s.attendees))
    out.print(table)


@training_app.command("due")
def training_due(
    days: Annotated[int, typer.Option(min=1, help="trained / drilled within this many days")] = 365,
    as_json: Json = False,
    state_dir: StateDir = None,
) -> None:
    """People not trained, or not drilled, within --days (never counts as due)."""
    from inventory.loader import load_inventory
    from tasks.prefect_api import get_client
    from tasks.report.training import due, read_all

    settings = settings_for(state_dir)
    inv = load_inventory(settings.inventory_path())
    with api(settings), get_client(sync_client=True) as client:
        sessions = read_all(client)
    rows = [r for r in due(list(inv.people), sessions, datetime.now(UTC).date(), days)
            if r.training_due or r.drill_due]  # fmt: skip
    if as_json:
        emit_json(rows)
        return
    if not rows:
        out.print(f"everyone was trained and drilled within {days} days")
        return
    table = Table("person", "last training", "last drill", title=f"Due (older than {days} days)")
    for r in rows:
        table.add_row(
            r.person,
            f"{r.last_training or 'never'}{' — due' if r.training_due else ''}",
            f"{r.last_drill or 'never'}{' — due' if r.drill_due else ''}",
        )
    out.print(table)
