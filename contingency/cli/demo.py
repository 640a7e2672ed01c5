"""The README's first command: a crashed lab service fixed by an alert, end to end."""

from __future__ import annotations

import requests
from rich.console import Console
from rich.markdown import Markdown

from contingency.cli.alerts import alertmanager_payload, post_alert
from contingency.lab.launcher import crash_service
from contingency.runtime.stack import down, stack_client, up, webhook_token
from contingency.runtime.waiting import wait_for_run
from inventory.loader import load_inventory
from inventory.settings import Settings


def _pid_of(url: str) -> int | None:
    try:
        return int(requests.get(url, timeout=2).json()["pid"])
    except (requests.RequestException, ValueError, KeyError):
        return None


def run_demo(settings: Settings, console: Console, keep_up: bool = True) -> bool:
    # the lab's drill calendar on: weekly game days on the lab's own hosts
    info = up(settings, lab=True, console=console, game_days=True)
    inv = load_inventory(info.inventory)
    url = inv.service("web").health.url  # type: ignore[union-attr]
    console.print(f"[bold]1.[/] web answers at {url} (pid {_pid_of(url)})")
    pid = crash_service(settings, "web")
    console.print(f"[bold]2.[/] crashed web (killed pid {pid}); now it answers: {_pid_of(url)}")
    payload = alertmanager_payload(
        {"alertname": "ServiceDown", "service": "web", "severity": "critical"},
        {"summary": "web is down (demo)"},
    )
    answer = post_alert(info.intake_url, webhook_token(settings), payload)
    run_id = answer["incidents"][0]["flow_run_id"]
    console.print(f"[bold]3.[/] alert sent; incident flow run {run_id}")
    console.print(f"    watch it: {info.ui_url}/runs/flow-run/{run_id}")
    with (
        console.status("waiting for the incident to finish"),
        stack_client(settings),
    ):
        run = wait_for_run(run_id, timeout_s=180)
    new_pid = _pid_of(url)
    ok = run.state is not None and run.state.is_completed() and new_pid not in (None, pid)
    console.print(
        f"[bold]4.[/] incident {run.state.name if run.state else '?'}; "
        f"web answers again with pid {new_pid}"
    )
    report = settings.reports_path / f"incident-{run_id}.md"
    if report.exists():
        console.print(Markdown(report.read_text(encoding="utf-8")))
        console.print(f"report file: {report}")
    if keep_up:
        console.print(
            f"\nThe stack is still up. UI: {info.ui_url}\n"
            f"Stop it with: contingency down --state-dir {settings.state_dir}"
        )
    else:
        down(settings)
    console.print("[green]demo passed[/]" if ok else "[red]demo failed[/]")
    return ok
