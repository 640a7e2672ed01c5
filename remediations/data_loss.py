"""Data-loss plan (数据丢失): restore a dataset from its backups without ever losing live data.

Facts (the restore points in object storage) → plan (the exact commands, the chosen
restore point, the other points offered to the approvers) → sign-off (always: a restore
is destructive, so two different approvers) → restore (tasks/restore.py: download with
SHA-256 on the fly → checks on the host → stop services → swap → start services →
health) → report. The live data is moved aside and kept, never deleted.

Restore point: the latest, or the latest before ``options["restore_before"]`` (ISO time,
from the CLI/API), or the one an approver picks in the sign-off form.
"""

from __future__ import annotations

import contextlib
import time
from datetime import UTC, datetime
from typing import Any

from prefect import get_run_logger

from inventory.datasets import Dataset
from inventory.errors import (
    NoRestorePoint,  # noqa: F401 - re-exported
)
from inventory.models import Inventory, PlanName
from remediations.context import IncidentContext, Outcome
from remediations.plan import Action, Plan
from remediations.software_crash import verify_recovery
from tasks.restore import (
    RestoreHooks,
    RestoreResult,
    host_check_command,
    restore_paths,
    restore_point,
    swap_command,
    verify_command,
)
from tasks.ssh import get_connection, run_ssh
from tasks.storage import RestorePoint, Store

MAX_CHOICES = 20
"""Restore points offered to the approvers (newest first)."""


def parse_time(text: str) -> datetime:
    """ISO 8601; a time without a zone is UTC. ``ValueError`` names the bad text."""
    try:
        at = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"not an ISO 8601 time: {text[:40]!r}") from None
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def choose_point(
    points: list[RestorePoint], before: datetime | None = None, pick: str = ""
) -> RestorePoint:
    """The picked point, else the latest (before ``before`` if given). Pure.

    >>> choose_point([])
    Traceback (most recent call last):
    ...
    inventory.errors.NoRestorePoint: no backups found
    """
    if pick:
        for p in points:
            if p.key == pick:
                return p
        raise NoRestorePoint(f"restore point {pick[:80]!r} is not in the backups")
    fit = [p for p in points if before is None or p.manifest.created <= before]
    if not fit:
        when = f" taken before {before:%Y-%m-%d %H:%M:%S} UTC" if before else ""
        raise NoRestorePoint(f"no backups found{when}")
    return max(fit, key=lambda p: p.manifest.created)


def _age(point: RestorePoint, now: datetime | None = None) -> str:
    s = point.age_s(now)
    return f"{s / 3600:.1f} h" if s >= 3600 else f"{s / 60:.1f} min"


def build_plan(ds_name: str, ds: Dataset, inv: Inventory, point: RestorePoint) -> Plan:
    """The exact commands a restore of ``point`` runs (pure: no I/O); ``<time>`` stands
    for the restore's timestamp in the temporary and kept paths."""
    live = ds.path
    dl, staged, aside = restore_paths(live, "<time>")
    stops = [(s, c) for s in ds.services for c in inv.service(s).manager.stop_commands()]
    starts = [(s, c) for s in ds.services for c in inv.service(s).manager.start_commands()]
    src = f"s3://{ds.location.bucket}/{point.key}"
    actions = [
        Action(
            host=ds.host,
            command=f"(SFTP) {src} → {dl} (SHA-256 {point.manifest.sha256[:12]}…, "
            f"{point.manifest.size} bytes)",
            description="download beside the live data, SHA-256 on the fly",
        ),
        Action(
            host=ds.host,
            command=host_check_command(ds, dl, staged, point.manifest.sha256),
            description="SHA-256 on the host, format check, stage, verify the copy",
        ),
        *[
            Action(host=inv.service(s).host, command=c, description=f"stop {s}", risk="medium")
            for s, c in stops
        ],
        Action(
            host=ds.host,
            command=swap_command(live, staged, aside),
            description="move live data aside (kept) and put the restored data in place",
            risk="high",
            idempotent=False,
        ),
        *[
            Action(host=inv.service(s).host, command=c, description=f"start {s}", risk="medium")
            for s, c in starts
        ],
        Action(host=ds.host, command=verify_command(ds, live), description="verify live data"),
    ]
    return Plan(
        plan=PlanName.data_loss,
        target=ds_name,
        actions=actions,
        requires_approval=True,
        destructive=True,
        reason=f"restore {ds_name} on {ds.host} from the backup of "
        f"{point.manifest.created:%Y-%m-%d %H:%M:%S} UTC ({_age(point)} old, RPO "
        f"{ds.rpo_s / 3600:.1f} h)",
    )


def points_markdown(points: list[RestorePoint], chosen: RestorePoint, rpo_s: int) -> str:
    now = datetime.now(UTC)
    lines = [
        "| restore point (key to pick) | taken (UTC) | size | age | within RPO |",
        "|---|---|---|---|---|",
    ]
    for p in sorted(points, key=lambda p: p.manifest.created, reverse=True)[:MAX_CHOICES]:
        mark = " **(default)**" if p.key == chosen.key else ""
        lines.append(
            f"| `{p.key}`{mark} | {p.manifest.created:%Y-%m-%d %H:%M:%S} | "
            f"{p.manifest.size} B | {_age(p, now)} | {'yes' if p.age_s(now) <= rpo_s else 'no'} |"
        )
    return "\n".join(lines)


class Progress:
    """A Prefect progress artifact for the download, updated at most every 0.5 s."""

    def __init__(self, total: int, dataset: str) -> None:
        from prefect.artifacts import create_progress_artifact

        self.total = max(total, 1)
        self.last = 0.0
        self.id: Any = None
        try:
            self.id = create_progress_artifact(
                progress=0.0, description=f"restore of {dataset}: download"
            )
        except Exception as exc:  # noqa: BLE001 - progress display must not fail a restore
            get_run_logger().warning("progress artifact unavailable: %s", type(exc).__name__)

    def __call__(self, done: int) -> None:
        now = time.monotonic()
        if self.id is None or (now - self.last < 0.5 and done < self.total):
            return
        self.last = now
        from prefect.artifacts import update_progress_artifact

        with contextlib.suppress(Exception):  # best effort: never fail a restore
            update_progress_artifact(self.id, progress=round(100 * done / self.total, 1))


def _hooks(ctx: IncidentContext, ds: Dataset) -> RestoreHooks:
    def run_all(kind: str) -> bool:
        for name in ds.services:
            svc = ctx.inv.service(name)
            mgr = svc.manager
            cmds = mgr.stop_commands() if kind == "stop" else mgr.start_commands()
            for cmd in cmds:
                res = run_ssh(ctx.inv.host(svc.host), cmd)
                ctx.record([res])
                if not res.ok:
                    return False
            if kind == "start":
                check = verify_recovery(svc, ctx.inv)
                ctx.event(
                    "health",
                    f"{name}: {'healthy' if check.recovered else 'unhealthy'} after "
                    f"{check.waited_s:.1f}s",
                )
                if not check.recovered:
                    return False
        return True

    def record(res: Any) -> None:
        ctx.record([res])

    return RestoreHooks(stop=lambda: run_all("stop"), start=lambda: run_all("start"), record=record)


def restore_section(ds: Dataset, point: RestorePoint, res: RestoreResult, took_s: float) -> str:
    rows = {
        "restore point": f"`{point.key}` ({point.manifest.created:%Y-%m-%d %H:%M:%S} UTC)",
        "size / SHA-256": f"{point.manifest.size} bytes / `{point.manifest.sha256}`",
        "age vs RPO": f"{_age(point)} (RPO {ds.rpo_s / 3600:.1f} h)",
        "time vs RTO": f"{took_s:.1f}s (RTO {ds.rto_s}s)",
        "result": res.reason,
        "live data kept at": f"`{res.aside}`" if res.aside else "—",
        "rolled back": "yes" if res.rolled_back else "no",
    }
    return "\n".join(f"- **{k}**: {v}" for k, v in rows.items())


def handle(ctx: IncidentContext) -> Outcome:
    """The data-loss plan inside an incident: restore points → plan → gate → restore."""
    if ctx.decision.target_kind != "dataset":
        return Outcome(
            outcome="unsupported",
            ok=False,
            message=f"{ctx.target} is not a dataset; the data-loss plan restores datasets",
        )
    ds = ctx.inv.datasets[ctx.target]
    store = Store.for_location(ds.location)
    try:
        points = store.restore_points(ds.location.prefix)
        before = ctx.options.get("restore_before")
        point = choose_point(
            points, parse_time(before) if before else None, ctx.options.get("restore_point", "")
        )
    except (NoRestorePoint, ValueError) as exc:
        return Outcome(outcome="no_backup", ok=False, message=f"{ctx.target}: {exc}")
    ctx.event("restore points", f"{len(points)} found; default {point.key}")
    plan = build_plan(ctx.target, ds, ctx.inv, point)
    newest = sorted(points, key=lambda p: p.manifest.created, reverse=True)[:MAX_CHOICES]
    plan.choices = [p.key for p in newest]
    ctx.plan = plan
    ctx.sections["Restore points"] = points_markdown(points, point, ds.rpo_s)
    ctx.event("planned", f"restore {point.key} onto {ds.host}:{ds.path}")
    if ctx.dry_run:
        return Outcome(outcome="dry_run", ok=True, message="plan only, nothing changed")
    stop = ctx.gate(plan)
    if stop is not None:
        return stop
    pick = ctx.last_gate.choice if ctx.last_gate else ""
    if pick:
        point = choose_point(points, pick=pick)
        ctx.event("restore point", f"picked by the approvers: {point.key}")
    started = time.monotonic()
    conn = get_connection(ctx.inv.host(ds.host))
    res = restore_point(
        ds, conn, store, point, progress=Progress(point.manifest.size, ctx.target),
        hooks=_hooks(ctx, ds),
    )  # fmt: skip
    took = time.monotonic() - started
    ctx.sections["Restore"] = restore_section(ds, point, res, took)
    ctx.event("restore", f"{'ok' if res.ok else 'FAILED'}: {res.reason} ({took:.1f}s)")
    if not res.ok:
        get_run_logger().error("ESCALATE: restore of %s failed: %s", ctx.target, res.reason)
        return Outcome(outcome="restore_failed", ok=False, message=f"{ctx.target}: {res.reason}")
    kept = f"; the previous data is kept at {res.aside}" if res.aside else ""
    return Outcome(
        outcome="restored",
        ok=True,
        message=f"{ctx.target} restored from {point.key} in {took:.1f}s{kept}",
    )
