"""`contingency oncall`: who is on duty (值班), per role, now or at a given time."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer
from pydantic import BaseModel
from rich.table import Table

from contingency.cli.common import Json, StateDir, emit_json, fail, out, settings_for
from contingency.lang import msg


class Duty(BaseModel):
    role: str
    title: str
    person: str | None
    """None: the role has no roster (every member is paged)."""
    display_name: str = ""
    phone: str = ""
    email: str = ""
    chat: str = ""
    since: datetime | None = None
    until: datetime | None = None
    next_person: str | None = None
    override: bool = False
    members: list[str] = []


def duties(inventory: Path, at: datetime | None, lang: str) -> list[Duty]:
    from inventory.duty import on_duty
    from inventory.loader import load_inventory
    from inventory.models import RoleName

    inv = load_inventory(inventory)
    rows = []
    for role in RoleName:
        role_def = inv.roles.get(role.value)
        if role_def is None and role.value not in inv.rosters:
            continue
        title = (role_def.title_zh if lang == "zh" else role_def.title_en) if role_def else ""
        members = [p.name for p in inv.members(role)]
        roster = inv.rosters.get(role.value)
        if roster is None:
            rows.append(Duty(role=role.value, title=title, person=None, members=members))
            continue
        shift = on_duty(roster, at)
        who = inv.people[shift.person]
        rows.append(
            Duty(
                role=role.value,
                title=title,
                person=shift.person,
                display_name=who.display_name,
                phone=who.phone,
                email=who.email,
                chat=who.chat,
                since=shift.since,
                until=shift.until,
                next_person=shift.next_person,
                override=shift.override,
                members=members,
            )
        )
    return rows


def oncall(
    at: Annotated[
        str | None,
        typer.Option(
            "--at",
            help="an ISO time (2026-12-24T08:30, or with a zone: ...+08:00); without a "
            "zone it is read in each roster's own zone. Default: now",
        ),
    ] = None,
    as_json: Json = False,
    state_dir: StateDir = None,
) -> None:
    """Who is on duty per role (from the inventory's rosters), with contact details."""
    from inventory.errors import InventoryError

    when = None
    if at is not None:
        try:
            when = datetime.fromisoformat(at.strip())
        except ValueError:
            bad = f"--at: expected an ISO time like 2026-12-24T08:30, got {at[:40]!r}"
            raise fail(bad, 2) from None
    settings = settings_for(state_dir)
    try:
        rows = duties(settings.inventory_path(), when, settings.language)
    except InventoryError as exc:
        raise fail(f"inventory: {str(exc).splitlines()[0]}") from None
    if as_json:
        emit_json(rows)
        return
    lang = settings.language
    table = Table(
        *(msg(lang, h) for h in ("role", "on duty", "contact", "shift", "next")),
        title=msg(lang, "On duty (值班)"),
    )
    for d in rows:
        if d.person is None:
            members = ", ".join(d.members) or "—"
            table.add_row(
                f"{d.role}\n{d.title}", msg(lang, "no roster: {members}", members=members)
            )
            continue
        contact = "\n".join(x for x in (d.phone, d.email, d.chat) if x) or "—"
        shift = f"{d.since:%Y-%m-%d %H:%M} → {d.until:%Y-%m-%d %H:%M %Z}"
        table.add_row(
            f"{d.role}\n{d.title}",
            f"{d.person}{msg(lang, ' (override)') if d.override else ''}\n{d.display_name}",
            contact,
            shift,
            d.next_person or "—",
        )
    out.print(table)


def ack(
    run_id: Annotated[str, typer.Argument(help="the incident's flow run id (in every page)")],
    person: Annotated[str, typer.Option("--as", help="your name in the inventory")],
    state_dir: StateDir = None,
) -> None:
    """Acknowledge an incident (接警): you take it; its escalation ladder stops."""
    from contingency.cli.common import api
    from contingency.runtime.people import Refused, acknowledge
    from inventory.loader import load_inventory
    from tasks.prefect_api import get_client

    settings = settings_for(state_dir)
    lang = settings.language
    inv = load_inventory(settings.inventory_path())
    if person not in inv.people:
        why = msg(lang, "{person!r} is not a person in the inventory", person=person[:64])
        raise fail(f"--as: {why}", 2)
    try:
        with api(settings), get_client(sync_client=True) as client:
            said = acknowledge(client, run_id, person, inv, settings.reports_path, lang)
    except Refused as exc:
        raise fail(str(exc)) from None
    out.print(said, markup=False)


incident_app = typer.Typer(
    help="Incidents reported by people (发现异常, 立即报告).", no_args_is_help=True
)


@incident_app.command("open")
def incident_open(
    summary: Annotated[str, typer.Option(help="what you see, in a sentence or two")],
    person: Annotated[str, typer.Option("--as", help="your name in the inventory")],
    plan: Annotated[
        str | None, typer.Option(help="the plan to run, if you know it (with --target)")
    ] = None,
    target: Annotated[
        str | None,
        typer.Option("--target", "--service", help="the service, host, link or dataset affected"),
    ] = None,
    severity: Annotated[
        str | None, typer.Option(help="a severity level of the inventory (I, II, III, IV)")
    ] = None,
    state_dir: StateDir = None,
) -> None:
    """Report a problem by hand: the same incident flow as an alert's. With --plan and
    --target the plan runs (its sign-offs, and the command center's activation where the
    level demands it); without a plan it waits for tech support's triage (`contingency
    incident triage`; --target is then a hint), paged, acknowledged and escalated like
    any other."""
    from contingency.cli.common import api
    from contingency.runtime.people import Refused, human_alert, open_incident
    from inventory.loader import load_inventory

    settings = settings_for(state_dir)
    lang = settings.language
    inv = load_inventory(settings.inventory_path())
    try:
        alert = human_alert(inv, summary, person, plan, target, severity, lang)
    except Refused as exc:
        raise fail(str(exc), 2) from None
    with api(settings):
        run_id = open_incident(
            settings.incident_deployment, alert, plan, target if plan is not None else None
        )
    then = "" if plan is not None else msg(lang, "; tech support is paged to triage it")
    said = msg(
        lang, "incident {run_id} opened (reported by {person})", run_id=run_id, person=person
    )
    out.print(said + then, markup=False)


@incident_app.command("triage")
def incident_triage(
    run_id: Annotated[str, typer.Argument(help="the reported incident's flow run id")],
    person: Annotated[str, typer.Option("--as", help="your name (tech support)")],
    plan: Annotated[
        str | None,
        typer.Option(help="the plan that fits (runbook:NAME for a runbook); none: by hand"),
    ] = None,
    target: Annotated[str | None, typer.Option(help="what the plan acts on")] = None,
    severity: Annotated[
        str | None, typer.Option(help="the severity level; default: as the rules classify")
    ] = None,
    note: Annotated[str, typer.Option(help="what you found")] = "",
    state_dir: StateDir = None,
) -> None:
    """Triage a problem reported by hand (初步判断): name the plan and target that fit, or
    none (a person handles it by hand), and the level. The incident then goes on: the
    plan's sign-offs and, where the level demands it, the command center's activation."""
    from contingency.cli.common import api
    from contingency.runtime.people import Refused, triage
    from inventory.loader import load_inventory
    from tasks.prefect_api import get_client

    settings = settings_for(state_dir)
    inv = load_inventory(settings.inventory_path())
    answer = {
        "person": person,
        "plan": plan or "",
        "target": target or "",
        "severity": severity or "",
        "note": note,
    }
    try:
        with api(settings), get_client(sync_client=True) as client:
            said = triage(client, run_id, answer, inv, settings.language)
    except Refused as exc:
        raise fail(str(exc), 2) from None
    out.print(said, markup=False)
