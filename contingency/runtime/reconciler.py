"""The reconciler: finishes the story of every incident whose owner died.

Truth lives in Prefect, not in a process. Every few seconds, one pass:

1. **Dead owners.** An open incident run (Running, Paused, Pending) whose heartbeats
   stopped (tasks/facts/liveness.py) is marked Crashed — ``Interrupted`` when it waited at a
   gate — naming what is known.
2. **Untold endings.** An incident run that ended Crashed or Failed without telling its
   own story (no ``reported`` tag: its process died, the worker could not start it, the
   database was busy) gets its report (file + artifact), its typed summary (outcome
   ``interrupted``, or ``crashed`` if it had acted: what stats and ``/metrics`` read)
   and its page. If it had not
   acted yet and its alert has not resolved, the same alert is started again as a
   successor run (a gate is re-asked, with new codes); if it had acted, the outcome is
   unknown and a human is paged: nothing is retried automatically.
3. **Locks.** A target lock whose holders are all final or dead is released (by the
   lease id the holder tagged on its run); a slot held with no lease anyone knows of is
   reset after two passes.
4. **Unacknowledged incidents.** One step up the severity level's escalation ladder
   per pass (contingency/runtime/escalation.py, docs/people.md).
5. **Follow-up actions** due by tomorrow or overdue: their owners are reminded once a
   day (contingency/runtime/reminders.py).

Several reconcilers may run at once (one per machine): a pass runs under a Prefect
global concurrency lease (``contingency-reconciler``, limit 1), and a successor's
idempotency key is derived from the dead run (contingency/runtime/incident_runs.py), so two
passes, or a pass and an intake, agree on one successor.

    python -m contingency.runtime.reconciler [--once] [--interval SECONDS]
"""

from __future__ import annotations

import argparse
import logging
import time
from contextlib import suppress
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from prefect.client.schemas.filters import (
    FlowRunFilter,
    FlowRunFilterExpectedStartTime,
    FlowRunFilterState,
    FlowRunFilterStateType,
    FlowRunFilterTags,
)
from prefect.client.schemas.objects import StateType
from prefect.client.schemas.sorting import FlowRunSort
from prefect.states import Crashed, State

from contingency.runtime.escalation import escalate
from contingency.runtime.incident_runs import (
    INTERRUPTED,
    MAX_SUCCESSORS,
    generation,
    start_successor,
)
from contingency.runtime.reminders import remind
from flows.incident import REPORTED
from inventory.outcomes import Outcome
from inventory.settings import get_settings
from remediations.rails import ACTED, LEASE_TAG, LOCK_PREFIX
from tasks.facts.liveness import DEAD_AFTER_S, dead_runs, is_alive
from tasks.gate.watch import RESOLVED_TAG
from tasks.prefect_api import (
    acquire_slots_with_lease,
    get_client,
    release_slots_with_lease,
    run_link,
)

log = logging.getLogger("contingency.runtime.reconciler")
MUTEX = "contingency-reconciler"
REMIND_EVERY_S = 60.0
OPEN = [StateType.RUNNING, StateType.PAUSED, StateType.PENDING]
ENDED = [StateType.CRASHED, StateType.FAILED]


def _tag(tags: list[str], prefix: str) -> str:
    return next((t[len(prefix) :] for t in tags if t.startswith(prefix)), "")


def _incident_runs(client: Any, types: list[StateType], since: datetime | None = None) -> list[Any]:
    return list(
        client.read_flow_runs(
            flow_run_filter=FlowRunFilter(
                tags=FlowRunFilterTags(all_=["incident"]),
                state=FlowRunFilterState(type=FlowRunFilterStateType(any_=types)),
                expected_start_time=FlowRunFilterExpectedStartTime(after_=since) if since else None,
            ),
            limit=200,
        )
    )


class Reconciler:
    def __init__(self, dead_after_s: float = DEAD_AFTER_S) -> None:
        self.dead_after_s = dead_after_s
        self.api_up_since: float | None = None
        self.suspect_locks: set[str] = set()
        self.reminded_at = -1e9

    # -- one pass -------------------------------------------------------------------
    def run_once(self) -> list[str]:
        """One pass (skipped if another reconciler holds the mutex); what it did."""
        from remediations.rails import ensure_limit

        try:
            with get_client(sync_client=True) as client:
                client.api_healthcheck()
                ensure_limit(client, MUTEX)
        except Exception as exc:  # noqa: BLE001 - the API is down: nothing is decided
            self.api_up_since = None
            return [f"Prefect API unreachable ({type(exc).__name__}); waiting"]
        if self.api_up_since is None:
            self.api_up_since = time.monotonic()
        try:
            lease = acquire_slots_with_lease(
                [MUTEX], 1, timeout_seconds=1, strict=True, lease_duration=60,
                suppress_warnings=True,
            )  # fmt: skip
        except TimeoutError:
            return []  # another reconciler is on it
        try:
            with get_client(sync_client=True) as client:
                return self._pass(client)
        finally:
            with suppress(Exception):
                release_slots_with_lease(lease.lease_id)

    def _pass(self, client: Any) -> list[str]:
        done: list[str] = []
        open_runs = _incident_runs(client, OPEN)
        # Heartbeats missed while the API (or this reconciler) was down prove nothing.
        settled = (
            self.api_up_since is not None
            and time.monotonic() - self.api_up_since >= self.dead_after_s
        )
        if settled:
            for run in dead_runs(client, open_runs, self.dead_after_s):
                done.append(self._mark_dead(client, run))
        since = datetime.now(UTC) - timedelta(days=1)
        for run in _incident_runs(client, ENDED, since):
            if REPORTED in run.tags:
                continue
            if run.state.is_failed() and _has_report(client, run.id):
                client.update_flow_run(run.id, tags=sorted({*run.tags, REPORTED}))
                continue  # it told its story before the tag existed (an older version)
            done.append(self.finish(client, run))
        if settled:
            done += self._sweep_locks(client)
        done += _revert_job_variables(client)
        try:  # pages nobody acknowledged climb the ladder (contingency/runtime/escalation.py)
            done += escalate(client, self._inventory)
        except Exception as exc:  # noqa: BLE001 - the rest of the pass stands
            log.error("escalation pass failed: %s", type(exc).__name__)
        if time.monotonic() - self.reminded_at >= REMIND_EVERY_S:
            self.reminded_at = time.monotonic()
            try:  # follow-up actions due or overdue (contingency/runtime/reminders.py)
                done += remind(client, self._inventory)
            except Exception as exc:  # noqa: BLE001
                log.error("follow-up reminders failed: %s", type(exc).__name__)
        return done

    @staticmethod
    def _inventory() -> Any:
        from inventory.loader import load_inventory

        return load_inventory(get_settings().inventory_path())

    def _mark_dead(self, client: Any, run: Any) -> str:
        where = "waiting at its gate" if run.state.is_paused() else run.state.name.lower()
        message = (
            f"no heartbeat for {self.dead_after_s:.0f}s: the process running this incident "
            f"died while {where}"
        )
        state: State[Any] = Crashed(message=message)
        if run.state.is_paused():
            state.name = INTERRUPTED
        client.set_flow_run_state(run.id, state, force=True)
        log.warning("%s (%s): %s", run.name, run.id, message)
        run = client.read_flow_run(run.id)
        return self.finish(client, run)

    # -- finishing a run's story --------------------------------------------------------
    def finish(self, client: Any, run: Any) -> str:
        """Report, page, release and (if nothing ran) start the alert again. Idempotent:
        the run is tagged ``reported`` at the end, and a successor has a derived key."""
        tags = list(run.tags)
        acted, resolved = ACTED in tags, RESOLVED_TAG in tags
        params = run.parameters or {}
        alert = params.get("alert") or {}
        labels = alert.get("labels") or {}
        name = str(labels.get("alertname") or run.name)
        target = _tag(tags, "target:") or next(
            (labels[k] for k in ("service", "host", "link", "dataset") if labels.get(k)), "?"
        )
        cause = (run.state.message or run.state.name) if run.state else "unknown"
        started = bool(_tag(tags, "plan:"))
        successor = None
        retry = not (acted or resolved or params.get("dry_run"))
        if retry and generation(run.idempotency_key) < MAX_SUCCESSORS:
            successor = start_successor(client, run)
        if acted:
            status = "outcome unknown"
            text = (
                f"The process running this incident died ({cause}) after it had started "
                f"acting on {target}: the outcome is unknown and the plan may have partly "
                "run. Nothing is retried automatically: a human must check the target."
            )
        else:
            what = "before it acted; nothing was run" if started else "before it started"
            text = f"The incident's run ended without handling its alert ({cause}), {what}."
            if successor is not None:
                status = "started again"
                text += (
                    f" The alert was started again as incident {successor.name} "
                    f"({successor.id}); if its plan needs sign-off the command center is "
                    "asked again, with new codes."
                )
            elif resolved:
                status = "not restarted (alert resolved)"
                text += " The alert has resolved since, so it was not started again."
            else:
                status = "needs a human"
                text += " It was not started again (dry run, or restarted too often)."
        lock = self._release_leases(tags)
        if lock:
            text += f" {lock}"
        deliveries = self._page(run, name, target, text, status)
        self._report(client, run, name, target, status, text, deliveries, successor)
        new_tags = sorted({*tags, REPORTED, *([f"successor:{successor.id}"] if successor else [])})
        client.update_flow_run(run.id, tags=new_tags)
        return f"{run.id} ({run.name}): {status}"

    @staticmethod
    def _release_leases(tags: list[str]) -> str:
        released = []
        for tag in tags:
            if tag.startswith(LEASE_TAG):
                with suppress(Exception):  # already released or expired
                    release_slots_with_lease(UUID(tag[len(LEASE_TAG) :]))
                    released.append(tag)
        target = _tag(tags, "target:")
        return f"The lock of {target} was released." if released else ""

    @staticmethod
    def _page(run: Any, name: str, target: str, text: str, status: str) -> str:
        from inventory.loader import load_inventory
        from tasks.notify import Pager

        settings = get_settings()
        labels = ((run.parameters or {}).get("alert") or {}).get("labels") or {}
        try:
            pager = Pager(
                load_inventory(settings.inventory_path()),
                settings.language,
                {"alert": name, "target": target, "summary": text, "status": status},
                drill=labels.get("drill") == "true",
                dry_run=bool((run.parameters or {}).get("dry_run")),
            )
            pager.event("incident_interrupted", {"link": run_link(run.id)})
            return pager.as_markdown()
        except Exception as exc:  # noqa: BLE001 - the report still says it
            log.error("paging for %s failed: %s", run.id, exc)
            return f"Paging failed: {type(exc).__name__}"

    @staticmethod
    def _report(
        client: Any,
        run: Any,
        name: str,
        target: str,
        status: str,
        text: str,
        deliveries: str,
        successor: Any,
    ) -> None:
        from prefect.client.schemas.actions import ArtifactCreate

        from inventory.secrets import redact
        from tasks.report.render import Timeline, artifact_key, publish_report, render_report
        from tasks.report.summary import IncidentSummary, publish_summary

        timeline = Timeline()
        if run.start_time:
            timeline.add("run started", f"incident run {run.name}", at=run.start_time)
        outcome = Outcome.crashed if status == "outcome unknown" else Outcome.interrupted
        timeline.add(outcome.value, text)
        plan = _tag(list(run.tags), "plan:")
        summary = {
            "outcome": outcome.value,
            "status": status,
            "flow run": str(run.id),
            "target": target,
            "plan": plan or "—",
            "acted": "yes" if ACTED in run.tags else "no",
        }
        if successor is not None:
            summary["successor"] = str(successor.id)
        markdown = render_report(
            f"Incident {name} — {outcome}",
            summary,
            timeline,
            [],
            {"Notifications": deliveries},
        )
        key = f"incident-{run.id}"
        publish_report(markdown, key, get_settings().reports_path)  # the file (best effort)
        client.create_artifact(
            ArtifactCreate(
                key=artifact_key(key), type="markdown", data=markdown,
                description=f"{outcome}: {text}"[:500], flow_run_id=run.id,
            )
        )  # fmt: skip
        params = run.parameters or {}
        labels = (params.get("alert") or {}).get("labels") or {}
        facts = IncidentSummary(
            run_id=str(run.id),
            plan=plan or "unroutable",
            target=target if target != "?" else "",
            outcome=outcome,
            message=redact(text)[:500],
            drill=labels.get("drill") == "true" or "drill" in run.tags,
            dry_run=bool(params.get("dry_run")),
        )
        try:  # what stats and /metrics read; without it they fall back to the run's state
            publish_summary(facts, flow_run_id=run.id)
        except Exception as exc:  # noqa: BLE001 - the report and the page went out
            log.error("summary for %s not published: %s", run.id, type(exc).__name__)

    # -- locks ------------------------------------------------------------------------
    def _sweep_locks(self, client: Any) -> list[str]:
        from prefect.client.schemas.actions import GlobalConcurrencyLimitUpdate

        done = []
        limits = client.read_global_concurrency_limits(limit=200)
        for lim in limits:
            if not lim.name.startswith(LOCK_PREFIX) or not lim.active_slots:
                self.suspect_locks.discard(lim.name)
                continue
            target_tag = f"target:{lim.name[len(LOCK_PREFIX) :]}"
            holders = client.read_flow_runs(  # newest first: a live holder is recent
                flow_run_filter=FlowRunFilter(tags=FlowRunFilterTags(all_=[target_tag])),
                sort=FlowRunSort.EXPECTED_START_TIME_DESC,
                limit=50,
            )
            leased = [r for r in holders if any(t.startswith(LEASE_TAG) for t in r.tags)]
            if any(is_alive(client, r, self.dead_after_s) for r in leased):
                self.suspect_locks.discard(lim.name)
                continue
            # every holder is final or dead: release the leases they tagged
            leases = [t for r in holders for t in r.tags if t.startswith(LEASE_TAG)]
            self._release_leases([*leases, target_tag])  # unknown or old leases: no-ops
            if not client.read_global_concurrency_limit_by_name(lim.name).active_slots:
                self.suspect_locks.discard(lim.name)
                done.append(f"{lim.name}: released the lease(s) of final or dead holders")
                continue
            if lim.name in self.suspect_locks:  # held two passes, by nobody known
                client.update_global_concurrency_limit(
                    lim.name, GlobalConcurrencyLimitUpdate(active_slots=0)
                )
                self.suspect_locks.discard(lim.name)
                done.append(f"{lim.name}: reset a slot held by no live incident")
            else:
                self.suspect_locks.add(lim.name)
        return done


def _revert_job_variables(client: Any) -> list[str]:
    """Deployments of the locked work pool carry no job variables. The server checks a
    flow run's job variables against the pool's locked template, but not a deployment
    *update* that adds some (and the worker merges a deployment's ``env`` into the run's
    process even without a placeholder): undo any such update at once, and say so."""
    from prefect.client.schemas.actions import DeploymentUpdate
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterTags

    done = []
    deployments = client.read_deployments(
        deployment_filter=DeploymentFilter(tags=DeploymentFilterTags(all_=["contingency"]))
    )
    for dep in deployments:
        if dep.job_variables:
            client.update_deployment(dep.id, DeploymentUpdate(job_variables={}))
            keys = ", ".join(sorted(dep.job_variables))
            log.error("deployment %s had job variables (%s) set: removed", dep.name, keys)
            done.append(f"deployment {dep.name}: job variables {keys} removed")
    return done


def _has_report(client: Any, run_id: UUID) -> bool:
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    from tasks.report.render import artifact_key

    found = client.read_artifacts(
        artifact_filter=ArtifactFilter(
            key=ArtifactFilterKey(any_=[artifact_key(f"incident-{run_id}")])
        ),
        limit=1,
    )
    return bool(found)


def reconcile_once(dead_after_s: float = DEAD_AFTER_S) -> list[str]:
    """One pass with a fresh reconciler (that trusts the API has been up long enough)."""
    rec = Reconciler(dead_after_s)
    rec.api_up_since = time.monotonic() - dead_after_s
    return rec.run_once()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="contingency.runtime.reconciler", description=__doc__)
    parser.add_argument("--once", action="store_true", help="one pass, then exit")
    parser.add_argument("--interval", type=float, default=3.0, help="seconds between passes")
    parser.add_argument(
        "--dead-after", type=float, default=DEAD_AFTER_S, help="seconds without a heartbeat"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    rec = Reconciler(args.dead_after)
    while True:
        try:
            for line in rec.run_once():
                log.info("%s", line)
        except Exception:  # noqa: BLE001 - one bad pass must not stop the next
            log.exception("reconciler pass failed")
        if args.once:
            return
        time.sleep(args.interval)


if __name__ == "__main__":
    main()
