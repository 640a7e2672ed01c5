"""The `contingency` command line."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, cast

import typer
from rich.console import Console
from rich.markdown import Markdown

from contingency.cli.common import Json, StateDir, emit_json, fail, settings_for
from contingency.cli.errors import Guarded
from contingency.lang import msg
from inventory.settings import Settings

if TYPE_CHECKING:
    from prefect.client.schemas.objects import FlowRun

app = typer.Typer(
    cls=Guarded,
    no_args_is_help=True,
    help="Contingency: emergency-response plans as Prefect flows.",
)
inventory_app = typer.Typer(no_args_is_help=True, help="Check the inventory.")
alert_app = typer.Typer(no_args_is_help=True, help="Send test alerts.")
lab_app = typer.Typer(no_args_is_help=True, help="Inject faults into the local lab.")
plans_app = typer.Typer(no_args_is_help=True, help="The emergency-response plan document.")
app.add_typer(inventory_app, name="inventory")
app.add_typer(alert_app, name="alert")
app.add_typer(lab_app, name="lab")
app.add_typer(plans_app, name="plans")
out = Console()
err = Console(stderr=True)


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        out.print(f"contingency {version('contingency')}", highlight=False)
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="print the version"),
    ] = False,
) -> None:
    """Contingency: emergency-response plans as Prefect flows."""


def main() -> None:
    """Console-script entry point."""
    app()


def _register_data_commands() -> None:
    from contingency.cli.restores import backups_app, restore

    app.add_typer(backups_app, name="backups")
    app.command("restore")(restore)
    from contingency.cli.review import review, stats

    app.command("review")(review)
    app.command("stats")(stats)
    from contingency.cli.people import ack, incident_app, oncall

    app.command("oncall")(oncall)
    app.command("ack")(ack)
    app.add_typer(incident_app, name="incident")
    from contingency.cli.actions import actions_app

    app.add_typer(actions_app, name="actions")
    from contingency.cli.security import security_app

    app.add_typer(security_app, name="security")
    from contingency.cli.plan_review import plans_review, plans_reviews

    plans_app.command("review")(plans_review)
    plans_app.command("reviews")(plans_reviews)
    from contingency.cli.training import training_app

    app.add_typer(training_app, name="training")
    from contingency.cli.components import register

    register(app)


_register_data_commands()


def _settings(state_dir: Path | None) -> Settings:
    return settings_for(state_dir)


@inventory_app.command("validate")
def inventory_validate(path: Path) -> None:
    """Validate an inventory file or directory; print every problem with file and line."""
    from inventory.loader import InventoryError, load_inventory

    try:
        inv = load_inventory(path)
    except InventoryError as exc:
        for line in str(exc).splitlines():
            err.print(line, markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None
    except FileNotFoundError as exc:
        err.print(f"{path}: {exc.strerror or exc}", markup=False)
        raise typer.Exit(1) from None
    single = sum(1 for s in inv.services.values() if s.instance_of is None)
    fleet = sum(len(v) for v in inv.instances.values())
    services = f"{single + len(inv.instances)} services" + (
        f" ({len(inv.instances)} on many hosts: {fleet} instances)" if inv.instances else ""
    )
    out.print(
        f"{path}: OK — {len(inv.hosts)} hosts, {services}, "
        f"{len(inv.people)} people, {len(inv.datasets)} datasets, "
        f"{len(inv.runbooks)} runbooks, {len(inv.routing)} routing rules"
    )


@app.command()
def up(
    lab: Annotated[bool, typer.Option("--lab", help="also start the local lab")] = False,
    game_days: Annotated[
        bool,
        typer.Option(
            "--game-days", help="with --lab: turn on the weekly game days the lab can run"
        ),
    ] = False,
    database_url: Annotated[
        str | None,
        typer.Option(
            "--database-url",
            help="PostgreSQL for the scale-out configuration, "
            "e.g. postgresql+asyncpg://user@127.0.0.1:5432/prefect",
        ),
    ] = None,
    api_port: Annotated[int | None, typer.Option(help="0 picks a free port")] = None,
    intake_port: Annotated[int | None, typer.Option(help="0 picks a free port")] = None,
    lab_ssh_port: Annotated[int | None, typer.Option(help="sshd port of lab hosts")] = None,
    lab_service_ports: Annotated[
        str | None, typer.Option(help="lab service ports, e.g. web=18080,api=18081,report=18082")
    ] = None,
    state_dir: StateDir = None,
) -> None:
    """Start the Prefect server, deployments, fork server, worker, alert intake and
    reconciler (and the lab), and the supervisor that restarts any that dies."""
    from contingency.runtime.stack import up as stack_up

    info = stack_up(
        _settings(state_dir),
        lab=lab,
        game_days=game_days,
        database_url=database_url,
        api_port=api_port,
        intake_port=intake_port,
        console=err,
        lab_ssh_port=lab_ssh_port,
        lab_service_ports={
            k: int(v) for k, v in (p.split("=", 1) for p in lab_service_ports.split(","))
        }
        if lab_service_ports
        else None,
    )
    out.print(
        f"Prefect UI:   {info.ui_url} (log in with the auth string in "
        f"{info.state_dir}/secrets/prefect-auth-string)"
    )
    out.print(f"Prefect API:  {info.api_url}")
    out.print(
        f"Alert intake: {info.intake_url}/webhook/alertmanager "
        f"(bearer token in {info.state_dir}/secrets/webhook-token unless "
        "CONTINGENCY_WEBHOOK_TOKEN is set)"
    )
    out.print(f"Inventory:    {info.inventory}")
    out.print(f"Supervisor:   restarts what dies; log in {info.state_dir}/run/supervisor.log")
    out.print("Stop with:    contingency down" + (f" --state-dir {state_dir}" if state_dir else ""))


@app.command()
def down(state_dir: StateDir = None) -> None:
    """Stop everything `contingency up` started, flow runs included."""
    from contingency.runtime.stack import down as stack_down

    stopped = stack_down(_settings(state_dir))
    out.print("stopped: " + (", ".join(stopped) or "nothing was running"))


def _parse_labels(pairs: list[str]) -> dict[str, str]:
    labels = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"expected NAME=VALUE, got {pair!r}")
        labels[key] = value
    return labels


@alert_app.command("send")
def alert_send(
    alertname: Annotated[str, typer.Option(help="the alertname label")] = "ServiceDown",
    label: Annotated[
        list[str] | None, typer.Option("--label", "-l", help="NAME=VALUE, repeatable")
    ] = None,
    resolved: Annotated[bool, typer.Option(help="send as resolved")] = False,
    state_dir: StateDir = None,
) -> None:
    """Post a test alert in Alertmanager format to the running intake."""
    from contingency.cli.alerts import alertmanager_payload, intake_url, post_alert
    from inventory.secrets import webhook_token

    settings = _settings(state_dir)
    labels = {"alertname": alertname, **_parse_labels(label or [])}
    payload = alertmanager_payload(labels, status="resolved" if resolved else "firing")
    answer = post_alert(intake_url(settings), webhook_token(settings), payload)
    for ref in answer["incidents"]:
        out.print(f"{ref['fingerprint']}: {ref['note']} {ref.get('flow_run_id') or ''}")


def _api(state_dir: Path | None):  # type: ignore[no-untyped-def]
    """Point this process at the configured Prefect API (contingency/runtime/api.py)."""
    from contingency.cli.common import api

    return api(_settings(state_dir))


def _decide(
    run_id: str,
    decision: str,
    name: str,
    code: str,
    comment: str,
    state_dir: Path | None,
    choice: str = "",
) -> None:
    from contingency.cli.gates import decide

    try:
        with _api(state_dir):
            decide(run_id, decision, name, code, comment, choice)
    except (RuntimeError, ValueError) as exc:
        err.print(f"[red]{exc}[/]")
        raise typer.Exit(1) from None
    lang = _settings(state_dir).language
    said = msg(lang, "{decision} submitted for {run_id}; the flow checks the approver and code "
               "(see its log and report)", decision=msg(lang, decision), run_id=run_id)  # fmt: skip
    out.print(said, markup=False)


@app.command()
def approve(
    run_id: str,
    name: Annotated[str, typer.Option("--as", help="your name in the inventory")],
    code: Annotated[str, typer.Option(help="the one-time code sent to you (your own channel)")],
    comment: Annotated[str, typer.Option(help="why")] = "",
    choice: Annotated[
        str, typer.Option(help="where the plan offers choices: e.g. a restore point key")
    ] = "",
    state_dir: StateDir = None,
) -> None:
    """Approve the plan waiting at a gate."""
    _decide(run_id, "approve", name, code, comment, state_dir, choice)


@app.command()
def reject(
    run_id: str,
    name: Annotated[str, typer.Option("--as", help="your name in the inventory")],
    code: Annotated[str, typer.Option(help="the one-time code sent to you (your own channel)")],
    comment: Annotated[str, typer.Option(help="why")] = "",
    state_dir: StateDir = None,
) -> None:
    """Reject the plan waiting at a gate: nothing runs."""
    _decide(run_id, "reject", name, code, comment, state_dir)


@app.command()
def gates(
    action: Annotated[
        str | None, typer.Argument(help="`reopen RUN`: re-ask the command center")
    ] = None,
    run_id: Annotated[str | None, typer.Argument(help="the interrupted incident")] = None,
    as_json: Json = False,
    state_dir: StateDir = None,
) -> None:
    """List incidents waiting at a gate, with their age; `gates reopen RUN` re-asks the
    command center for an incident whose gate was interrupted."""
    from rich.table import Table

    from contingency.cli.gates import open_gates, reopen

    if action is not None:
        if action != "reopen" or not run_id:
            err.print("usage: contingency gates [reopen RUN]")
            raise typer.Exit(2)
        try:
            with _api(state_dir):
                new = reopen(run_id)
        except RuntimeError as exc:
            err.print(f"[red]{exc}[/]")
            raise typer.Exit(1) from None
        lang = _settings(state_dir).language
        out.print(msg(lang, "re-opened {run_id} as incident {new}; the command center is asked "
                      "again", run_id=run_id, new=new))  # fmt: skip
        return
    lang = _settings(state_dir).language
    with _api(state_dir):
        rows = open_gates()
    if as_json:
        emit_json(rows)
        return
    table = Table(*(msg(lang, h) for h in ("flow run", "incident", "waiting", "expires (UTC)")))
    gone = msg(lang, " (process gone: being re-opened)")
    for g in rows:
        table.add_row(
            g.flow_run_id,
            g.name + ("" if g.live else f" [yellow]{gone}[/]"),
            msg(lang, "{minutes} min", minutes=f"{g.age_s / 60:.1f}"),
            f"{g.expires_at:%H:%M:%S}" if g.expires_at else "—",
        )
    out.print(table if rows else msg(lang, "no open gates"))


@app.command()
def freeze(
    reason: Annotated[str, typer.Option(help="why automation must stop")],
    name: Annotated[str, typer.Option("--as", help="who freezes")] = "operator",
    state_dir: StateDir = None,
) -> None:
    """Kill switch on: from now on plans only plan and notify; nothing runs."""
    from remediations.rails import freeze as do_freeze

    with _api(state_dir):
        do_freeze(name, reason)
    lang = _settings(state_dir).language
    said = msg(lang, "frozen by {name}: {reason} — plans only plan and notify",
               name=name, reason=reason)  # fmt: skip
    out.print(f"[red]{said}[/]")


@app.command()
def thaw(state_dir: StateDir = None) -> None:
    """Kill switch off: plans act again."""
    from remediations.rails import thaw as do_thaw

    with _api(state_dir):
        do_thaw()
    out.print(f"[green]{msg(_settings(state_dir).language, 'thawed: plans act again')}[/]")


@app.command("plan")
def plan_cmd(
    plan: Annotated[str, typer.Argument(help="software_crash, network_outage, ...")],
    target: Annotated[str, typer.Option(help="a service, host or link in the inventory")],
    dry_run: Annotated[
        bool, typer.Option("--dry-run/--no-dry-run", help="only plan (the only mode here)")
    ] = True,
    param: Annotated[
        list[str] | None,
        typer.Option(help="NAME=VALUE, a runbook parameter (typed by the runbook); repeatable"),
    ] = None,
    state_dir: StateDir = None,
) -> None:
    """Show exactly what a plan would run on a target, through the deployed incident
    flow with dry_run=True (the same can be done from the Prefect API). Runbooks:
    contingency plan runbook:NAME --target T --param max_age_min=5."""
    from prefect.deployments import run_deployment

    from contingency.cli.reports import fetch_report
    from contingency.runtime.waiting import wait_for_run

    if not dry_run:
        err.print("only --dry-run is offered here: real runs start from alerts")
        raise typer.Exit(2)
    options = dict(p.partition("=")[::2] for p in param or [])
    if any(not k for k in options) or any("=" not in p for p in param or []):
        err.print("--param takes NAME=VALUE")
        raise typer.Exit(2)
    settings = _settings(state_dir)
    alert = {
        "fingerprint": f"dry-run-{plan}-{target}"[:120],
        "source": "cli",
        "labels": {"alertname": "DryRun", "plan": plan, "target": target},
    }
    with _api(state_dir):
        # called outside an event loop, run_deployment returns the run (not a coroutine)
        run = cast(
            "FlowRun",
            run_deployment(
                settings.incident_deployment,
                timeout=0,
                parameters={
                    "alert": alert,
                    "dry_run": True,
                    "plan": plan,
                    "target": target,
                    "options": options,
                },
            ),
        )
        final = wait_for_run(run.id, timeout_s=120)
        # the worker may be on another machine: its report is read back from Prefect
        found = fetch_report(str(run.id), settings.reports_path / f"incident-{run.id}.md")
    if found is not None:
        out.print(Markdown(found.markdown))
    ok = final.state is not None and final.state.is_completed()
    raise typer.Exit(0 if ok else 1)


def _drill_results(state_dir: Path | None) -> list[list[str]] | None:
    """Latest drill results from the stack's Prefect API; None if it is not running."""
    from contingency.cli.plandoc import latest_drill_results
    from contingency.runtime.api import api_target
    from inventory.errors import NotConfigured

    try:
        api_target(_settings(state_dir))
    except NotConfigured:
        return None
    try:
        with _api(state_dir):
            return latest_drill_results()
    except Exception as exc:  # noqa: BLE001 - the document is still generated without them
        err.print(f"drill results unavailable ({type(exc).__name__}); generating without them")
        return None


def _records(state_dir: Path | None, what: str) -> list[Any] | None:
    """Records kept in the stack's Prefect API (``training`` sessions, plan ``reviews``)
    for the document; None if it is not reachable."""
    from contingency.runtime.api import api_target
    from inventory.errors import NotConfigured

    try:
        api_target(_settings(state_dir))
    except NotConfigured:
        return None
    try:
        from tasks.prefect_api import get_client
        from tasks.report import plan_reviews, training

        reader = training.read_all if what == "training" else plan_reviews.read_all
        with _api(state_dir), get_client(sync_client=True) as client:
            return reader(client)
    except Exception as exc:  # noqa: BLE001 - the document is still generated without them
        err.print(f"{what} records unavailable ({type(exc).__name__}); generating without")
        return None


@plans_app.command("doc")
def plans_doc(
    lang: Annotated[str, typer.Option(help="zh or en")] = "en",
    fmt: Annotated[str, typer.Option("--format", help="md, html or docx")] = "md",
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="file; default stdout")
    ] = None,
    inventory: Annotated[Path | None, typer.Option(help="default: the configured one")] = None,
    state_dir: StateDir = None,
) -> None:
    """Generate the emergency-response plan (预案) from the inventory and the code; the
    latest drill results come from the running stack's Prefect API, if there is one."""
    from contingency.cli.plandoc import render, to_html
    from inventory.loader import InventoryError, load_inventory

    if lang not in ("zh", "en") or fmt not in ("md", "html", "docx"):
        err.print("--lang must be zh or en, --format md, html or docx")
        raise typer.Exit(2)
    if fmt == "docx" and output is None:
        err.print("--format docx writes a file: give --output PLAN.docx")
        raise typer.Exit(2)
    settings = _settings(state_dir)
    path = inventory or settings.inventory_path()
    try:
        inv = load_inventory(path)
    except InventoryError as exc:
        err.print(str(exc), markup=False, soft_wrap=True)
        raise typer.Exit(1) from None
    text = render(
        inv,
        lang,
        last_results=_drill_results(state_dir),
        training=_records(state_dir, "training"),
        inventory_path=path,
        reviews=_records(state_dir, "reviews"),
        review_days=settings.plan_review_days,
    )
    if fmt == "docx" and output is not None:
        from contingency.cli.plandoc_docx import to_docx

        output.write_bytes(to_docx(text, lang))
        out.print(f"wrote {output}")
        return
    text = to_html(text, lang) if fmt == "html" else text
    if output:
        output.write_text(text, encoding="utf-8")
        out.print(f"wrote {output}")
    else:
        print(text, end="")


@lab_app.command("inbox")
def lab_inbox(
    channel: Annotated[
        str | None, typer.Option(help="cc, ops, support, security, users or info")
    ] = None,
    person: Annotated[
        str | None,
        typer.Option(help="a person's own channel, e.g. zhang.wei (their sign-off codes)"),
    ] = None,
    last: int = 10,
    state_dir: StateDir = None,
) -> None:
    """Show the last notifications the lab's channels received (approval codes: --person)."""
    from contingency.lab.inbox import person_path, read

    if channel and person:
        err.print("give --channel or --person, not both")
        raise typer.Exit(2)
    path = person_path(person) if person else f"/{channel}" if channel else None
    rows = read(_settings(state_dir).lab_dir / "inbox.jsonl", path)[-last:]
    for r in rows:
        out.print(f"[bold]{r.get('path')}[/] {r.get('title')}\n{r.get('message')}\n")
    if not rows:
        out.print("the inbox is empty")


@lab_app.command("crash")
def lab_crash(service: str, state_dir: StateDir = None) -> None:
    """Kill a lab service (SIGKILL), as a crash would."""
    from contingency.lab.launcher import crash_service

    pid = crash_service(_settings(state_dir), service)
    out.print(f"killed {service} (pid {pid})")


@app.command()
def demo(state_dir: StateDir = None, keep_up: bool = True) -> None:
    """Start stack + lab, crash the `web` service, send the alert, show the report."""
    from contingency.cli.demo import run_demo

    ok = run_demo(_settings(state_dir), out, keep_up=keep_up)
    raise typer.Exit(0 if ok else 1)


@app.command()
def report(
    run_id: str,
    as_json: Json = False,
    state_dir: StateDir = None,
) -> None:
    """Print the report of an incident flow run: the local file if this machine wrote
    it, else the report artifact from the Prefect API (any machine)."""
    from contingency.cli.reports import fetch_report

    settings = _settings(state_dir)
    path = settings.reports_path / f"incident-{run_id}.md"
    if path.exists() and not as_json:
        out.print(Markdown(path.read_text(encoding="utf-8")))
        return
    with _api(state_dir):
        found = fetch_report(run_id, path)
    if found is None:
        raise fail(f"no report for {run_id} (no file at {path}, no artifact in Prefect)")
    if as_json:
        emit_json(found)
    else:
        out.print(Markdown(found.markdown))
