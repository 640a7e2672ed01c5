"""Data-loss plan (数据丢失): restore a dataset from its backups without ever losing live data.

Facts (the restore points in object storage) → plan (every step exactly, its paths
fixed by the timestamp taken when the plan is built; the other points offered to the
approvers) → sign-off (always: a restore is destructive, so two different approvers)
→ the executor: copy with SHA-256 on the fly → checks on the host → stop services →
swap → start services → health → verify. Each step declares its undo, so a failure
after the swap puts the old data back. The live data is moved aside and kept, never
deleted.

Restore point: the latest, or the latest before ``options["restore_before"]`` (ISO time,
from the CLI/API), or the one an approver picks in the sign-off form.
"""

from __future__ import annotations

import shlex
from datetime import UTC, datetime

from inventory.datasets import Dataset
from inventory.errors import NoRestorePoint
from inventory.models import Inventory, PlanName
from inventory.outcomes import Outcome
from remediations.context import IncidentContext, Verdict
from remediations.plan import Action, Plan, ProbeAction, SshAction, TransferAction
from tasks.actions.restore import (
    CHECK_FAILURES,
    host_check_command,
    restore_paths,
    swap_command,
    verify_command,
)
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


def build_plan(
    ds_name: str, ds: Dataset, inv: Inventory, point: RestorePoint, at: datetime | None = None
) -> Plan:
    """The exact steps a restore of ``point`` runs, with their undo (pure: no I/O).
    ``at`` (default: now) fixes the timestamp in the temporary and kept paths."""
    live = ds.path
    tag = (at or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    dl, staged, aside = restore_paths(live, tag)
    cleanup = SshAction(
        host=ds.host, command=f"rm -rf {shlex.quote(dl)} {shlex.quote(staged)}",
        description="remove the downloaded copy", name="clean up",
    )  # fmt: skip
    mgr = {s: inv.service(s).manager for s in ds.services}

    def ssh(svc: str, cmd: str, what: str, undo: list[str]) -> SshAction:
        host = inv.service(svc).host
        return SshAction(
            host=host, command=cmd, description=f"{what} {svc}", risk="medium",
            rollback=[SshAction(host=host, command=u, description=f"undo: {what} {svc}")
                      for u in undo],
        )  # fmt: skip

    stops = [ssh(s, c, "stop", mgr[s].start_commands()) for s in ds.services
             for c in mgr[s].stop_commands()]  # fmt: skip
    starts: list[Action] = []
    for s in ds.services:
        starts += [ssh(s, c, "start", mgr[s].stop_commands()) for c in mgr[s].start_commands()]
        starts.append(ProbeAction(service=s, until_healthy=True, name=f"health of {s}"))
    put_back = (
        f"if [ -e {shlex.quote(aside)} ] || [ -L {shlex.quote(aside)} ]; then "
        f"rm -rf {shlex.quote(live)} && mv {shlex.quote(aside)} {shlex.quote(live)}; fi"
    )
    actions: list[Action] = [
        TransferAction(
            dataset=ds_name,
            host=ds.host,
            bucket=ds.location.bucket,
            key=point.key,
            path=dl,
            manifest=point.manifest,
            via=ds.restore_via,
            description="download beside the live data",
            verify="SHA-256 and size against the manifest, on the fly"
            if ds.restore_via == "sftp"
            else "SHA-256 against the manifest, on the host (next step)",
            rollback=[cleanup],
        ),
        SshAction(
            host=ds.host,
            command=host_check_command(ds, dl, staged, point.manifest.sha256),
            description="SHA-256 on the host, format check, stage, verify the copy",
            failures=dict(CHECK_FAILURES),
            changes=True,
        ),
        *stops,
        SshAction(
            host=ds.host,
            command=swap_command(live, staged, aside),
            description="move live data aside (kept) and put the restored data in place",
            risk="high",
            idempotent=False,
            ok_codes=[0, 3],
            name="swap",
            failures={
                21: "could not move live data aside; live data untouched",
                22: "the swap failed; live data untouched",
            },
            rollback=[
                SshAction(
                    host=ds.host,
                    command=put_back,
                    risk="high",
                    description="put the old data back",
                    name="put back",
                )
            ],
        ),
        *starts,
    ]
    if ds.verify:
        actions.append(SshAction(
            host=ds.host, command=verify_command(ds, live), description="verify live data",
            changes=False, name="verify live data",
        ))  # fmt: skip
    return Plan(
        plan=PlanName.data_loss,
        target=ds_name,
        actions=actions,
        requires_approval=True,
        destructive=True,
        reason=f"restore {ds_name} on {ds.host} from the backup of "
        f"{point.manifest.created:%Y-%m-%d %H:%M:%S} UTC ({_age(point)} old, RPO "
        f"{ds.rpo_s / 3600:.1f} h); the live data is kept at {aside}",
        success=Outcome.restored,
        success_message=f"{ds_name} restored from {point.key}",
        failure=Outcome.restore_failed,
        unrecovered=Outcome.restore_failed,
        facts={"aside": aside, "download": dl},
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


def restore_section(
    ds: Dataset, point: RestorePoint, result: str, aside: str, rolled_back: bool, took_s: float
) -> str:
    rows = {
        "restore point": f"`{point.key}` ({point.manifest.created:%Y-%m-%d %H:%M:%S} UTC)",
        "size / SHA-256": f"{point.manifest.size} bytes / `{point.manifest.sha256}`",
        "age vs RPO": f"{_age(point)} (RPO {ds.rpo_s / 3600:.1f} h)",
        "time vs RTO": f"{took_s:.1f}s (RTO {ds.rto_s}s)",
        "result": result,
        "live data kept at": f"`{aside}`" if aside else "—",
        "rolled back": "yes" if rolled_back else "no",
    }
    return "\n".join(f"- **{k}**: {v}" for k, v in rows.items())


def _points(ctx: IncidentContext) -> tuple[Dataset, list[RestorePoint]]:
    ds = ctx.inv.datasets[ctx.target]
    return ds, Store.for_location(ds.location).restore_points(ds.location.prefix)


def prepare(ctx: IncidentContext) -> Plan | Verdict:
    """The restore points → the plan for the chosen one (the others offered)."""
    if ctx.decision.target_kind != "dataset":
        return Verdict(
            outcome=Outcome.unsupported,
            message=f"{ctx.target} is not a dataset; the data-loss plan restores datasets",
        )
    try:
        ds, points = _points(ctx)
        before = ctx.options.get("restore_before")
        point = choose_point(
            points, parse_time(before) if before else None, ctx.options.get("restore_point", "")
        )
    except (NoRestorePoint, ValueError) as exc:
        return Verdict(outcome=Outcome.no_backup, message=f"{ctx.target}: {exc}")
    ctx.event("restore points", f"{len(points)} found; default {point.key}")
    plan = build_plan(ctx.target, ds, ctx.inv, point)
    newest = sorted(points, key=lambda p: p.manifest.created, reverse=True)[:MAX_CHOICES]
    plan.choices = [p.key for p in newest]
    ctx.sections["Restore points"] = points_markdown(points, point, ds.rpo_s)
    ctx.facts["restore_point"] = point
    return plan


def replan(ctx: IncidentContext, pick: str) -> Plan:
    """The plan for the point the approvers picked (one of the offered choices)."""
    ds, points = _points(ctx)
    point = choose_point(points, pick=pick)
    ctx.event("restore point", f"picked by the approvers: {point.key}")
    plan = build_plan(ctx.target, ds, ctx.inv, point)
    plan.choices = []  # decided
    ctx.facts["restore_point"] = point
    return plan


def finish(ctx: IncidentContext, plan: Plan, verdict: Verdict) -> Verdict:
    """The report's restore section, and the reason in the words of a restore."""
    point = ctx.facts.get("restore_point")
    if not isinstance(point, RestorePoint) or verdict.outcome not in (
        Outcome.restored, Outcome.restore_failed,
    ):  # fmt: skip
        return verdict
    ds = ctx.inv.datasets[ctx.target]
    took = sum(s.duration_s for s in ctx.steps)  # the restore itself, not the sign-off wait
    swap = next(a for a in plan.actions if a.name == "swap")
    swapped = any(s.ok and not s.rollback and s.what == swap.shown for s in ctx.steps)
    put_back = [s for s in ctx.steps if s.rollback and s.name == "put back"]
    kept = plan.facts.get("aside", "")
    if verdict.outcome is Outcome.restored:
        result = "restored"
        ctx.sections["Restore"] = restore_section(ds, point, result, kept, False, took)
        ctx.event("restore", f"ok: {result} ({took:.1f}s)")
        return verdict.model_copy(update={
            "message": f"{ctx.target} restored from {point.key} in {took:.1f}s; the previous "
            f"data is kept at {kept}"})  # fmt: skip
    failed = next((s for s in reversed(ctx.steps) if not s.ok and not s.rollback), None)
    if not swapped:
        why = (failed.detail if failed else "") or "a step failed"
        if failed is not None and failed.kind == "transfer":
            why = why.replace("download failed:", "download failed, live data untouched:")
        elif failed is not None and failed.kind == "ssh" and "stop" in failed.what:
            why = "could not stop the services; live data untouched"
        elif "untouched" not in why:
            why += "; live data untouched"
        rolled = False
    else:
        rolled = bool(put_back) and all(s.ok for s in put_back)
        after = "old data put back" if rolled else "ROLLBACK FAILED"
        why = f"the health check failed after the swap; {after}"
    ctx.sections["Restore"] = restore_section(ds, point, why, kept if swapped else "", rolled, took)
    ctx.event("restore", f"FAILED: {why} ({took:.1f}s)")
    return verdict.model_copy(update={"message": f"{ctx.target}: {why}"})
