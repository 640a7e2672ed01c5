"""`contingency security`: hosts held by a security incident (安全事件), and their release."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from contingency.cli.common import Json, StateDir, api, emit_json, fail, out, settings_for

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
    with api(settings), get_client(sync_client=True) as client:
        found = read_all(client)
    if as_json:
        emit_json(found)
        return
    if not found:
        out.print("no host is held")
        return
    table = Table("host", "incident", "since (UTC)", "why", title="Security holds")
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
    inv = load_inventory(settings.inventory_path())
    who = inv.people.get(person)
    if who is None or RoleName.command_center not in who.roles:
        raise fail(f"--as: {person[:64]!r} is not a command-center member", 2)
    if unisolate and host not in inv.hosts:
        raise fail(f"{host[:64]!r} is not a host in the inventory", 2)
    with api(settings), get_client(sync_client=True) as client:
        lifted = lift(client, host)
    if lifted is None:
        raise fail(f"{host[:64]!r} is not held")
    out.print(f"{host} released by {person} (held by incident {lifted.run_id})", markup=False)
    if unisolate:
        from inventory.errors import ContingencyError
        from tasks.ssh.run import get_connection

        command = inv.security_policy(host).release_command()
        try:
            res = get_connection(inv.host(host), settings).run(command, timeout=60)
        except ContingencyError as exc:
            raise fail(f"isolation not lifted: {exc}") from None
        if res.exit_code != 0:
            raise fail(f"isolation not lifted: `{command}` exited {res.exit_code}")
        out.print(f"{host}: isolation lifted (`{command}`)", markup=False)
