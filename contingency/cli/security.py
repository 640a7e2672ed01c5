"""`contingency security`: hosts held by a security incident (安全事件), and their release."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from contingency.cli.common import Json, StateDir, api, emit_json, fail, out, settings_for
from contingency.lang import msg

security_app = typer.Typer(
    help="Security holds: a host under a security incident is left as it is (no automatic "
    "restart, fencing or other change) until a person releases it.",
    no_args_is_help=True,
)


@security_app.command("holds")
def holds(as_json: Json = False, state_dir: StateDir = None) -> None:
    """Hosts held by a security incident, oldest first."""
    from tasks.prefect_api import get_client
    from tasks.security.holds import read_all

    settings = settings_for(state_dir)
    lang = settings.language
    with api(settings), get_client(sync_client=True) as client:
        found = read_all(client)
    if as_json:
        emit_json(found)
        return
    if not found:
        out.print(msg(lang, "no host is held"))
        return
    heads = ("host", "incident", "since (UTC)", "why")
    table = Table(*(msg(lang, h) for h in heads), title=msg(lang, "Security holds"))
    for h in found:
        table.add_row(h.host, h.run_id, f"{h.since:%Y-%m-%d %H:%M}", h.reason)
    out.print(table)


@security_app.command("release")
def release(
    host: Annotated[str, typer.Argument(help="the held host")],
    person: Annotated[str, typer.Option("--as", help="your name (command center)")],
    unisolate: Annotated[
        bool, typer.Option(help="also lift the host's isolation (its nftables table)")
    ] = False,
    state_dir: StateDir = None,
) -> None:
    """Release a held host: automatic plans act on it again. Its isolation stays unless
    --unisolate (or a runbook, or a person) lifts it."""
    from inventory.loader import load_inventory
    from inventory.models import RoleName
    from tasks.prefect_api import get_client
    from tasks.security.holds import release as lift

    settings = settings_for(state_dir)
    lang = settings.language
    inv = load_inventory(settings.inventory_path())
    who = inv.people.get(person)
    if who is None or RoleName.command_center not in who.roles:
        raise fail(
            msg(lang, "--as: {person!r} is not a command-center member", person=person[:64]), 2
        )
    if unisolate and host not in inv.hosts:
        raise fail(msg(lang, "{host!r} is not a host in the inventory", host=host[:64]), 2)
    with api(settings), get_client(sync_client=True) as client:
        lifted = lift(client, host)
    if lifted is None:
        raise fail(msg(lang, "{host!r} is not held", host=host[:64]))
    said = msg(lang, "{host} released by {person} (held by incident {run_id})",
               host=host, person=person, run_id=lifted.run_id)  # fmt: skip
    out.print(said, markup=False)
    if unisolate:
        from inventory.errors import ContingencyError
        from tasks.ssh.run import get_connection

        command = inv.security_policy(host).release_command()
        try:
            res = get_connection(inv.host(host), settings).run(command, timeout=60)
        except ContingencyError as exc:
            raise fail(msg(lang, "isolation not lifted: {why}", why=exc)) from None
        if res.exit_code != 0:
            why = f"`{command}` exited {res.exit_code}"
            raise fail(msg(lang, "isolation not lifted: {why}", why=why))
        said = msg(lang, "{host}: isolation lifted (`{command}`)", host=host, command=command)
        out.print(said, markup=False)
