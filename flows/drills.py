"""Scheduled drills (定期组织应急处置演练): backup-restore drills into a sandbox.

A restore drill takes, for each dataset with a ``drill`` target (or those named), the
latest backup, restores it into the drill sandbox (never the live path) with the same
code and checks a real restore uses (SHA-256, format, verify command), measures RTO
(wall time of the restore) and RPO (age of the backup), compares them with the
dataset's targets and cleans the sandbox. Results: a table artifact per run and a
keyed markdown artifact per dataset (``drill-<dataset>``: its history is the
artifact's versions); a notification when a drill fails or misses a target. The run
ends ``DrillFailed`` (a Failed state) if any dataset did.

Deployed with a daily cron in prefect.yaml (``restore-drill``).
"""

from __future__ import annotations

import re
import shlex
import time
from datetime import UTC, datetime
from pathlib import PurePosixPath

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.runtime import flow_run
from prefect.states import Completed, Failed, State
from pydantic import BaseModel

from inventory.datasets import Dataset
from inventory.errors import ContingencyError
from inventory.loader import load_inventory
from inventory.models import Inventory
from inventory.secrets import install_redaction, redact
from inventory.settings import get_settings
from tasks.actions.restore import restore_point
from tasks.notify import Pager
from tasks.report.render import artifact_key as report_key
from tasks.ssh.run import close_all, current_run_id, get_connection
from tasks.storage import RestorePoint, Store


class DrillResult(BaseModel):
    dataset: str
    ok: bool
    """Restored and verified in the sandbox."""
    met_targets: bool = False
    key: str = ""
    size: int = 0
    rto_s: float = 0.0
    rto_target_s: int = 0
    rpo_s: float = 0.0
    rpo_target_s: int = 0
    reason: str = ""

    @property
    def passed(self) -> bool:
        return self.ok and self.met_targets


class DrillReport(BaseModel):
    results: list[DrillResult]

    @property
    def failed(self) -> list[DrillResult]:
        return [r for r in self.results if not r.passed]


def _latest(points: list[RestorePoint]) -> RestorePoint | None:
    return max(points, key=lambda p: p.manifest.created) if points else None


def drill_dataset(name: str, ds: Dataset, inv: Inventory) -> DrillResult:
    """Restore the latest backup of ``ds`` into its sandbox, measure and clean up."""
    base = DrillResult(dataset=name, ok=False, rto_target_s=ds.rto_s, rpo_target_s=ds.rpo_s)
    if ds.drill is None:
        return base.model_copy(update={"reason": "no drill target in the inventory"})
    sandbox = ds.drill.path
    try:
        point = _latest(Store.for_location(ds.location).restore_points(ds.location.prefix))
        if point is None:
            return base.model_copy(update={"reason": "no backups found"})
        rpo = point.age_s()
        base = base.model_copy(update={"key": point.key, "size": point.manifest.size, "rpo_s": rpo})
        conn = get_connection(inv.host(ds.drill.host))
        q = shlex.quote(sandbox)
        parent = shlex.quote(str(PurePosixPath(sandbox).parent))
        clean = f"rm -rf {q} {q}.contingency-old-*"
        prep = conn.run(f"mkdir -p {parent} && {clean}", timeout=120)
        if not prep.ok:
            return base.model_copy(update={"reason": f"cannot prepare the sandbox {sandbox}"})
        started = time.monotonic()
        store = Store.for_location(ds.location)
        res = restore_point(ds, conn, store, point, target=sandbox)
        rto = time.monotonic() - started
        conn.run(clean, timeout=120)
    except ContingencyError as exc:
        return base.model_copy(update={"reason": redact(str(exc))})
    misses = []
    if rto > ds.rto_s:
        misses.append(f"RTO missed: {rto:.1f}s > {ds.rto_s}s")
    if rpo > ds.rpo_s:
        misses.append(f"RPO missed: backup is {rpo:.0f}s old > {ds.rpo_s}s")
    via = f" (via {res.via}" + (f"; direct failed: {res.fallback})" if res.fallback else ")")
    reason = (res.reason if not res.ok else "; ".join(misses) or "restored and verified") + via
    return base.model_copy(
        update={"ok": res.ok, "met_targets": not misses, "rto_s": round(rto, 2), "reason": reason}
    )


def artifact_key(name: str) -> str:
    """Prefect artifact keys allow lowercase letters, digits and dashes only.

    >>> artifact_key("Orders_DB.v2")
    'drill-orders-db-v2'
    """
    return "drill-" + re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-")


def _row(r: DrillResult) -> dict[str, object]:
    return {
        "dataset": r.dataset,
        "result": "pass" if r.passed else "FAIL",
        "restore point": r.key or "—",
        "bytes": r.size,
        "RTO s (target)": f"{r.rto_s:.1f} ({r.rto_target_s})",
        "RPO s (target)": f"{r.rpo_s:.0f} ({r.rpo_target_s})",
        "detail": r.reason,
    }


def _publish(report: DrillReport) -> None:
    now = datetime.now(UTC)
    create_table_artifact(
        table=[_row(r) for r in report.results],
        key="restore-drill",
        description=f"Restore drill {now:%Y-%m-%d %H:%M} UTC: "
        f"{len(report.results) - len(report.failed)}/{len(report.results)} passed",
    )
    for r in report.results:
        lines = [f"### Restore drill {now:%Y-%m-%d %H:%M:%S} UTC — {r.dataset}", ""]
        lines += [f"- **{k}**: {v}" for k, v in _row(r).items()]
        create_markdown_artifact(
            markdown="\n".join(lines),
            key=artifact_key(r.dataset),
            description=f"{'pass' if r.passed else 'FAIL'}: {r.reason}"[:500],
        )


def _run_link() -> str:
    from prefect.utilities.urls import url_for

    return (url_for("flow-run", obj_id=str(flow_run.id)) or "") if flow_run.id else ""


@flow(name="restore-drill")
def restore_drill(datasets: list[str] | None = None, inventory_path: str | None = None) -> State:
    """Drill every dataset that has a drill target (or the named ones)."""
    install_redaction()
    logger = get_run_logger()
    inv = load_inventory(inventory_path or get_settings().inventory_path())
    names = datasets or sorted(n for n, d in inv.datasets.items() if d.drill is not None)
    results = []
    try:
        for name in names:
            if name not in inv.datasets:
                results.append(DrillResult(dataset=name[:80], ok=False, reason="unknown dataset"))
                continue
            r = drill_dataset(name, inv.datasets[name], inv)
            logger.info("drill %s: %s — %s", name, "pass" if r.passed else "FAIL", r.reason)
            results.append(r)
    finally:
        close_all(current_run_id())
    report = DrillReport(results=results)
    _publish(report)
    if not report.failed:
        return Completed(message=f"{len(results)} datasets drilled, all passed", data=report)
    summary = "; ".join(f"{r.dataset}: {r.reason}" for r in report.failed)
    pager = Pager(
        inv,
        get_settings().language,
        {
            "drill": "restore drill",
            "failed": len(report.failed),
            "total": len(results),
            "summary": summary,
            "link": _run_link(),
        },
    )
    pager.event("drill_failed")
    for d in pager.flush():
        if not d.ok:
            logger.warning("drill notification via %s failed: %s", d.channel, d.error)
    return Failed(name="DrillFailed", message=summary[:500], data=report)


# --- Game days -------------------------------------------------------------------------


class GameDayResult(BaseModel):
    scenario: str
    target: str
    incident: str = ""
    incident_outcome: str = ""
    detect_s: float | None = None
    detect_target_s: float
    recover_s: float | None = None
    recover_target_s: float
    undone_by_drill: bool = False
    notes: list[str] = []

    @property
    def grade(self) -> str:
        """pass: detected and recovered in time; partial: recovered late or detected late;
        fail: not recovered by the plan."""
        if self.recover_s is None:
            return "fail"
        late = self.recover_s > self.recover_target_s or (self.detect_s or 0) > self.detect_target_s
        return "partial" if late else "pass"


def _intake() -> tuple[str, str]:
    """The intake URL and bearer token of the stack this worker belongs to."""
    settings = get_settings()
    url = settings.public_intake_url() or f"http://127.0.0.1:{settings.intake_port}"
    if settings.webhook_token is not None:
        return url, settings.webhook_token.get_secret_value()
    from inventory.secrets import resolve_secret

    # resolved at use (secrets dir, CONTINGENCY_SECRET_WEBHOOK_TOKEN or a Secret block):
    # flow processes do not carry the intake's token in their environment
    return url, resolve_secret("webhook-token").get_secret_value()


def _post_alert(labels: dict[str, str], fingerprint: str) -> str:
    """The alert the monitoring would send, through the real intake; returns the run id."""
    import requests

    url, token = _intake()
    now = datetime.now(UTC).isoformat()
    payload = {
        "version": "4", "status": "firing", "receiver": "contingency", "groupKey": fingerprint,
        "alerts": [{"status": "firing", "labels": labels, "annotations":
                    {"summary": f"game day: {labels}"}, "startsAt": now,
                    "fingerprint": fingerprint}],
    }  # fmt: skip
    resp = requests.post(
        f"{url}/webhook/alertmanager", json=payload, timeout=30,
        headers={"Authorization": f"Bearer {token}"},
    )  # fmt: skip
    resp.raise_for_status()
    return str(resp.json()["incidents"][0]["flow_run_id"])


def _find_incident(target: str, since: datetime) -> str:
    """An incident for ``target`` raised by real monitoring since ``since`` (or "")."""
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterStartTime,
        FlowRunFilterTags,
    )

    from remediations.rails import tag_value
    from tasks.prefect_api import get_client

    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(
                tags=FlowRunFilterTags(all_=[f"target:{tag_value(target)}"]),
                start_time=FlowRunFilterStartTime(after_=since),
            )
        )
    return str(runs[0].id) if runs else ""


def _run_state(run_id: str) -> tuple[bool, str]:
    from uuid import UUID

    from tasks.prefect_api import get_client

    with get_client(sync_client=True) as client:
        state = client.read_flow_run(UUID(run_id)).state
    return bool(state and state.is_final()), (state.name or "?") if state else "?"


def _game_day_markdown(r: GameDayResult) -> str:
    def fmt(v: float | None) -> str:
        return "—" if v is None else f"{v:.1f}s"

    lines = [
        f"## Game day: {r.scenario} on {r.target} — **{r.grade.upper()}**",
        "",
        "| measure | value | target |",
        "|---|---|---|",
        f"| time to detect | {fmt(r.detect_s)} | {r.detect_target_s:.0f}s |",
        f"| time to recover | {fmt(r.recover_s)} | {r.recover_target_s:.0f}s |",
        "",
        f"- incident: {r.incident or '—'} ({r.incident_outcome or 'none'})",
        f"- put back by the drill itself: {'yes' if r.undone_by_drill else 'no'}",
        *[f"- {n}" for n in r.notes],
    ]
    return "\n".join(lines)


@flow(name="game-day")
def game_day(
    scenario: str = "service-stop",
    target: str = "web",
    detect_target_s: float = 30.0,
    recover_target_s: float = 120.0,
    alert_via: str = "probe",
    probe_interval_s: float = 0.5,
    inventory_path: str | None = None,
) -> State:
    """Inject a fault, let the alert path and the plan run, time detection and recovery.

    ``alert_via="probe"``: this flow's own probe plays the monitoring system and posts
    the alert to the intake (the lab has no Prometheus); ``"monitoring"``: the real
    monitoring must raise it and this flow waits for the incident to appear. The alert
    carries ``drill="true"``: nobody is paged, the incident is tagged ``drill``.
    """
    from tasks.actions.faults import FaultRefused, healthy, inject_and_time, plan_fault, run_all

    install_redaction()
    logger = get_run_logger()
    inv = load_inventory(inventory_path or get_settings().inventory_path())
    result = GameDayResult(
        scenario=scenario, target=target, detect_target_s=detect_target_s,
        recover_target_s=recover_target_s,
    )  # fmt: skip
    try:
        fault = plan_fault(scenario, target, inv, window_s=recover_target_s * 3)
        if not healthy(fault, inv):
            raise FaultRefused(f"{target} is not healthy before the drill; nothing injected")
        injected, detected = inject_and_time(fault, inv, probe_interval_s, detect_target_s * 4)
        result.detect_s = None if detected is None else round(detected - injected, 2)
        labels = {**fault.alert, "drill": "true", "severity": "drill"}
        since = datetime.now(UTC)
        incident = ""
        if alert_via == "probe" and detected is not None:
            incident = _post_alert(labels, f"gameday-{flow_run.id or 'local'}")
        deadline = injected + recover_target_s * 3
        while time.monotonic() < deadline:
            if not incident and alert_via == "monitoring":
                incident = _find_incident(target, since)
            if incident:
                done, result.incident_outcome = _run_state(incident)
                if done and healthy(fault, inv):
                    result.recover_s = round(time.monotonic() - injected, 2)
                    break
                if done:
                    break  # the plan ended without recovering: the drill puts it back
            time.sleep(probe_interval_s)
        result.incident = incident
        if result.recover_s is None:
            logger.error("game day: %s not recovered by the plan; putting it back", target)
            run_all(fault.undo, fault.host, inv)
            result.undone_by_drill = True
        else:
            run_all(fault.cleanup, fault.host, inv)
    except (FaultRefused, ContingencyError) as exc:
        result.notes.append(f"refused or failed: {redact(str(exc))}")
    finally:
        close_all(current_run_id())
    markdown = _game_day_markdown(result)
    create_markdown_artifact(
        markdown=markdown,
        key=report_key(f"game-day-{scenario}-{target}"),
        description=f"{result.grade}: detect {result.detect_s}s, recover {result.recover_s}s",
    )
    logger.info("game day %s on %s: %s", scenario, target, result.grade)
    if result.grade == "pass":
        return Completed(message=f"pass: {markdown.splitlines()[0]}", data=result)
    return Failed(name="GameDayFailed", message=f"{result.grade}", data=result)
