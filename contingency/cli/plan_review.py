"""`contingency plans review` / `plans reviews`: the command center's periodic review and
approval of the plan (预案评审), recorded against the plan's current version."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.table import Table

from contingency.cli.common import Json, StateDir, api, emit_json, fail, out, settings_for
from contingency.lang import msg


def plans_review(
    person: Annotated[str, typer.Option("--as", help="your name (command center)")],
    note: Annotated[str, typer.Option(help="the review's conclusion or remarks")] = "",
    state_dir: StateDir = None,
) -> None:
    """Record that the command center reviewed and approved the current version of the
    plan (its inventory's newest changelog entry or commit)."""
    from inventory.loader import load_inventory
    from inventory.models import RoleName
    from inventory.revisions import current_version
    from tasks.prefect_api import get_client
    from tasks.report.plan_reviews import PlanReview, next_due, read_all, record, review_id

    settings = settings_for(state_dir)
    lang = settings.language
    path = settings.inventory_path()
    inv = load_inventory(path)
    who = inv.people.get(person)
    if who is None or RoleName.command_center not in who.roles:
        raise fail(
            msg(lang, "--as: {person!r} is not a command-center member", person=person[:64]), 2
        )
    today = datetime.now(UTC).date()
    version = current_version(inv.changelog, path)
    try:
        review = PlanReview(
            id=review_id(version, today, person), version=version, date=today, by=person,
            note=note.strip(),
        )  # fmt: skip
    except ValueError as exc:
        raise fail(f"review: {str(exc).splitlines()[0]}", 2) from None
    with api(settings), get_client(sync_client=True) as client:
        new = record(client, review)
        due = next_due(read_all(client), today, settings.plan_review_days)
    text = (
        "review of version {version} by {person} recorded; next review due {due}"
        if new
        else "review of version {version} by {person} already recorded; next review due {due}"
    )
    out.print(msg(lang, text, version=version, person=person, due=due.due), markup=False)


def plans_reviews(as_json: Json = False, state_dir: StateDir = None) -> None:
    """Every recorded review, oldest first, and when the next is due."""
    from tasks.prefect_api import get_client
    from tasks.report.plan_reviews import next_due, read_all

    settings = settings_for(state_dir)
    with api(settings), get_client(sync_client=True) as client:
        found = read_all(client)
    due = next_due(found, datetime.now(UTC).date(), settings.plan_review_days)
    if as_json:
        emit_json({"reviews": found, "next": due})
        return
    if found:
        table = Table("date", "by", "version", "note", title="Plan reviews (预案评审)")
        for r in found:
            table.add_row(f"{r.date}", r.by, r.version, r.note or "—")
        out.print(table)
    else:
        out.print("no review recorded")
    state = "overdue since" if due.overdue else "next review due"
    out.print(f"{state} {due.due} (every {settings.plan_review_days} days)")
