"""`contingency backups list DATASET` and `contingency restore DATASET`.

A restore from the command line is the data-loss plan run by the deployed incident flow
(plan ``data_loss``, target the dataset), so it gets the same sign-off (two approvers),
rails, report and progress artifact as one started by an alert. The command follows the
run: it says when the gate waits, shows the download as a rich progress bar and prints
the report at the end.
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, cast

import typer
from rich.console import Console
from rich.markdown import Markdown
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from contingency.cli.common import Json, StateDir, api, emit_json, err, out
from contingency.cli.common import settings_for as _settings
from inventory.settings import Settings

if TYPE_CHECKING:
    from prefect.client.schemas.objects import FlowRun

backups_app = typer.Typer(no_args_is_help=True, help="Backups and restore points.")


def _dataset(settings: Settings, name: str):  # type: ignore[no-untyped-def]
    from inventory.loader import InventoryError, load_inventory

    try:
        inv = load_inventory(settings.inventory_path())
    except InventoryError as exc:
        err.print(str(exc), markup=False, soft_wrap=True)
        raise typer.Exit(1) from None
    if name not in inv.datasets:
        known = ", ".join(sorted(inv.datasets)) or "none"
        err.print(f"unknown dataset {name[:80]!r} (datasets: {known})", markup=False)
        raise typer.Exit(2)
    return inv.datasets[name]


@backups_app.command("list")
def backups_list(dataset: str, as_json: Json = False, state_dir: StateDir = None) -> None:
    """Restore points of DATASET: time, size, age against the RPO."""
    from inventory.errors import ContingencyError
    from tasks.storage import Store

    settings = _settings(state_dir)
    ds = _dataset(settings, dataset)
    try:
        points = Store.for_location(ds.location, settings).restore_points(ds.location.prefix)
    except ContingencyError as exc:
        err.print(f"cannot list backups: {exc}", markup=False)
        raise typer.Exit(1) from None
    now = datetime.now(UTC)
    stale = bool(points) and points[-1].age_s(now) > ds.rpo_s
    if as_json:
        emit_json(
            [
                {
                    "key": p.key,
                    "taken": p.manifest.created,
                    "size": p.manifest.size,
                    "sha256": p.manifest.sha256,
                    "age_s": round(p.age_s(now), 1),
                    "within_rpo": p.age_s(now) <= ds.rpo_s,
                }
                for p in reversed(points)
            ]
        )
        raise typer.Exit(1 if stale else 0)
    table = Table("taken (UTC)", "restore point", "size", "SHA-256", "age", "RPO")
    for p in reversed(points):
        age = p.age_s(now)
        table.add_row(
            f"{p.manifest.created:%Y-%m-%d %H:%M:%S}",
            p.key,
            f"{p.manifest.size:,} B",
            p.manifest.sha256[:12] + "…",
            f"{age / 3600:.1f} h",
            "[green]within[/]" if age <= ds.rpo_s else "[red]older[/]",
        )
    out.print(table if points else f"no backups of {dataset}")
    if stale:
        err.print(f"[red]the latest backup of {dataset} is older than its RPO ({ds.rpo_s}s)[/]")
        raise typer.Exit(1)


def _progress_of(run_id: uuid.UUID) -> float | None:
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    from tasks.prefect_api import get_client

    with get_client(sync_client=True) as client:
        arts = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run_id]))
        )
    # a progress artifact's data is its percentage (Prefect types every artifact's as dict | Any)
    values = [
        float(cast(float, a.data)) for a in arts if a.type == "progress" and a.data is not None
    ]
    return max(values) if values else None


def follow(run_id: uuid.UUID, console: Console, poll_s: float = 0.5) -> str:
    """Show the run's state and download progress until it ends; return the state name."""
    from tasks.prefect_api import get_client

    told_gate = False
    with Progress(
        TextColumn("{task.description}"), BarColumn(), TextColumn("{task.percentage:>5.1f}%"),
        TimeElapsedColumn(), console=console, transient=False,
    ) as bar:  # fmt: skip
        task = bar.add_task("waiting for a worker", total=100)
        while True:
            with get_client(sync_client=True) as client:
                state = client.read_flow_run(run_id).state
            name = (state.name if state else None) or "?"
            if state and state.is_paused() and not told_gate:
                told_gate = True
                bar.console.print(
                    f"[yellow]waiting for sign-off[/]: two command-center members approve with "
                    f"`contingency approve {run_id} --as NAME --code CODE [--choice KEY]` "
                    "or in the Prefect UI"
                )
            pct = _progress_of(run_id)
            desc = f"restore: {name.lower()}" + (" — downloading" if pct is not None else "")
            bar.update(task, completed=pct or 0, description=desc)
            if state and state.is_final():
                return name
            time.sleep(poll_s)


def restore(
    dataset: Annotated[str, typer.Argument(help="a dataset in the inventory")],
    at: Annotated[
        str | None,
        typer.Option("--at", help="restore the latest backup taken before this ISO time"),
    ] = None,
    point: Annotated[
        str | None, typer.Option("--point", help="restore this restore point (key)")
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="show the plan only")] = False,
    state_dir: StateDir = None,
) -> None:
    """Restore DATASET from its backups (needs two command-center sign-offs)."""
    from prefect.deployments import run_deployment

    from contingency.cli.reports import fetch_report
    from remediations.data_loss import parse_time

    settings = _settings(state_dir)
    _dataset(settings, dataset)
    options: dict[str, str] = {}
    if at:
        try:
            options["restore_before"] = parse_time(at).isoformat()
        except ValueError as exc:
            err.print(f"--at: {exc}", markup=False)
            raise typer.Exit(2) from None
    if point:
        options["restore_point"] = point
    alert = {
        "fingerprint": f"cli-restore-{dataset}-{uuid.uuid4().hex[:8]}",
        "source": "cli",
        "labels": {"alertname": "RestoreRequested", "dataset": dataset},
    }
    params = {
        "alert": alert, "dry_run": dry_run, "plan": "data_loss", "target": dataset,
        "options": options,
    }  # fmt: skip
    with api(settings):
        # called outside an event loop, run_deployment returns the run (not a coroutine)
        run = cast(
            "FlowRun",
            run_deployment(settings.incident_deployment, timeout=0, parameters=params),
        )
        out.print(f"incident flow run {run.id} (Ctrl-C stops watching, not the restore)")
        name = follow(run.id, out)
        found = fetch_report(str(run.id), settings.reports_path / f"incident-{run.id}.md")
    if found is not None:
        out.print(Markdown(found.markdown))
    raise typer.Exit(0 if name == "Completed" else 1)
