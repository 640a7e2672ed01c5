"""`contingency actions`: follow-up actions from reviews, tracked until done."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from contingency.cli.common import Json, StateDir, api, emit_json, fail, out, settings_for
from contingency.lang import msg

actions_app = typer.Typer(
    help="Follow-up actions from reviews (整改措施): list, close.", invoke_without_command=True
)


@actions_app.callback()
def actions_list(
    ctx: typer.Context,
    show_all: Annotated[bool, typer.Option("--all", help="also done and dropped ones")] = False,
    as_json: Json = False,
    state_dir: StateDir = None,
) -> None:
    """Open follow-up actions, soonest due first (overdue ones marked)."""
    if ctx.invoked_subcommand is not None:
        return
    from tasks.prefect_api import get_client
    from tasks.report.actions import ActionState, read_all

    settings = settings_for(state_dir)
    lang = settings.language
    with api(settings), get_client(sync_client=True) as client:
        found = read_all(client)
    if not show_all:
        found = [a for a in found if a.state is ActionState.open]
    if as_json:
        emit_json([{**a.model_dump(mode="json"), "overdue": a.overdue()} for a in found])
        return
    if not found:
        out.print(
            msg(lang, "no open follow-up actions" if not show_all else "no follow-up actions")
        )
        return
    heads = ("id", "action", "owner", "due", "state", "incident")
    table = Table(*(msg(lang, h) for h in heads), title=msg(lang, "Follow-up actions"))
    for a in found:
        state = msg(lang, "OVERDUE" if a.overdue() else a.state.value)
        table.add_row(a.id, a.action, a.owner, f"{a.due:%Y-%m-%d}", state, a.run_id[:8])
    out.print(table)


def _close(action_id: str, state: str, note: str, state_dir: Path | None) -> None:
    from tasks.prefect_api import get_client
    from tasks.report.actions import ActionState, find, save

    settings = settings_for(state_dir)
    lang = settings.language
    with api(settings), get_client(sync_client=True) as client:
        action = find(client, action_id)
        if action is None:
            raise fail(
                msg(lang, "no follow-up action {action_id!r} (see `contingency actions`)",
                    action_id=action_id[:40])
            )  # fmt: skip
        if action.state is not ActionState.open:
            was = msg(lang, action.state.value)
            out.print(msg(lang, "{action_id} is already {state}", action_id=action_id, state=was))
            return
        action.state = ActionState(state)
        action.closed_at = datetime.now(UTC)
        action.note = note.strip()[:1000]
        save(client, action)
    said = msg(lang, "follow-up {action_id} {state}", action_id=action_id, state=msg(lang, state))
    out.print(said, markup=False)


@actions_app.command("done")
def actions_done(
    action_id: Annotated[str, typer.Argument(help="the id `contingency actions` shows")],
    note: Annotated[str, typer.Option(help="what was done")] = "",
    state_dir: StateDir = None,
) -> None:
    """Mark a follow-up action done."""
    _close(action_id, "done", note, state_dir)


@actions_app.command("drop")
def actions_drop(
    action_id: Annotated[str, typer.Argument(help="the id `contingency actions` shows")],
    note: Annotated[str, typer.Option(help="why it is dropped")],
    state_dir: StateDir = None,
) -> None:
    """Drop a follow-up action (with the reason)."""
    _close(action_id, "dropped", note, state_dir)
