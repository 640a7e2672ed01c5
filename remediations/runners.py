"""How the executor runs each kind of action: one function per kind, one result type.

Every runner returns a :class:`StepResult` (``.ok``, what ran, where, how long, the exit
status where there is one — never a made-up one). Only ``remediations/executor.py``
calls these; a plan never runs anything itself.
"""

from __future__ import annotations

import contextlib
import logging
import time
from typing import Any, Literal

import requests
from pydantic import BaseModel

from inventory.errors import ContingencyError, HostKeyError
from inventory.models import Inventory, RoleName, Service
from inventory.network import Link
from inventory.secrets import redact
from remediations.plan import (
    Action,
    DnsAction,
    EvidenceAction,
    HttpAction,
    NotifyAction,
    ProbeAction,
    RouteAction,
    SshAction,
    TransferAction,
    WaitAction,
)
from tasks.actions.address import apply_dns
from tasks.actions.direct import fetch_direct
from tasks.actions.failover import DriverResult, driver_for
from tasks.actions.restore import download
from tasks.facts.network import probe_link, routes_via
from tasks.facts.probes import ProbeResult, check_service
from tasks.notify import Pager
from tasks.ssh.models import CommandResult
from tasks.ssh.run import get_connection
from tasks.storage import Store

log = logging.getLogger("contingency.executor")
StepOutcome = Literal["ok", "failed", "timed_out", "unknown"]
VERIFY_ROUNDS = 3


class StepResult(BaseModel):
    """What one action did: the one result type of every kind (commands, transfers,
    driver and API calls, probes, waits, notices)."""

    index: int
    kind: str
    name: str = ""
    where: str
    what: str
    outcome: StepOutcome
    exit_code: int | None = None
    detail: str = ""
    duration_s: float = 0.0
    rollback: bool = False

    @property
    def ok(self) -> bool:
        return self.outcome == "ok"


def _result(index: int, a: Action, ok: bool, detail: str, t0: float, **kw: Any) -> StepResult:
    return StepResult(
        index=index, kind=a.kind, name=a.name, where=a.where, what=a.shown,
        outcome="ok" if ok else "failed", detail=detail,
        duration_s=round(time.monotonic() - t0, 3), **kw,
    )  # fmt: skip


def from_command(index: int, a: SshAction, res: CommandResult) -> StepResult:
    ok = res.exit_code in a.ok_codes and not res.timed_out and res.outcome != "unknown"
    outcome: StepOutcome = (
        "unknown" if res.outcome == "unknown"
        else "timed_out" if res.timed_out
        else "ok" if ok else "failed"
    )  # fmt: skip
    detail = res.message if outcome == "unknown" else a.failures.get(res.exit_code or -1, "")
    tail = (res.stderr_tail or res.stdout_tail or "").strip()[-300:]
    return StepResult(
        index=index, kind="ssh", name=a.name, where=a.host, what=a.command, outcome=outcome,
        exit_code=res.exit_code, detail=detail or tail, duration_s=res.duration_s,
    )  # fmt: skip


def ssh(index: int, a: SshAction, inv: Inventory) -> tuple[StepResult, CommandResult | None]:
    """The command as a Prefect task named after the step inside a flow run (streamed
    to the run's log); a plain pooled SSH call outside one. A pinned-key mismatch is
    raised (never passed over); other SSH errors are a failed step."""
    from prefect.context import FlowRunContext

    from inventory.errors import CommandError
    from tasks.ssh.run import run_ssh

    host, t0 = inv.host(a.host), time.monotonic()
    try:
        if FlowRunContext.get() is not None:
            runner = run_ssh.with_options(task_run_name=a.name) if a.name else run_ssh
            res = runner(host, a.command, a.timeout_s)
        else:
            res = get_connection(host).run(a.command, timeout=a.timeout_s)
    except HostKeyError:
        raise
    except ContingencyError as exc:
        if isinstance(exc, CommandError) and isinstance(exc.result, CommandResult):
            sent = from_command(index, a, exc.result)  # sent, then went wrong: record it
            why = redact(str(exc))[:300]
            return sent.model_copy(update={"outcome": "failed", "detail": why}), exc.result
        return _result(index, a, False, f"{type(exc).__name__}: {redact(str(exc))[:200]}", t0), None
    return from_command(index, a, res), res


class Progress:
    """A Prefect progress artifact for a transfer, updated at most every 0.5 s."""

    def __init__(self, total: int, what: str) -> None:
        from prefect.artifacts import create_progress_artifact

        self.total = max(total, 1)
        self.last = 0.0
        self.id: Any = None
        try:
            self.id = create_progress_artifact(progress=0.0, description=f"{what}: download")
        except Exception as exc:  # noqa: BLE001 - progress display must not fail a restore
            log.warning("progress artifact unavailable: %s", type(exc).__name__)

    def __call__(self, done: int) -> None:
        now = time.monotonic()
        if self.id is None or (now - self.last < 0.5 and done < self.total):
            return
        self.last = now
        from prefect.artifacts import update_progress_artifact

        with contextlib.suppress(Exception):  # best effort: never fail a restore
            update_progress_artifact(self.id, progress=round(100 * done / self.total, 1))


def transfer(index: int, a: TransferAction, inv: Inventory) -> StepResult:
    from prefect.context import FlowRunContext

    t0 = time.monotonic()
    ds = inv.datasets[a.dataset]
    size = a.manifest.size
    progress = Progress(size, f"restore of {a.dataset}") if FlowRunContext.get() else None
    fell_back = ""
    try:
        conn = get_connection(inv.host(a.host))
        store = Store.for_location(ds.location)
        # Either way the copy's SHA-256 is the next step's check, on the host.
        if a.via != "sftp":
            why = fetch_direct(conn, store, ds.location, a.key, a.path, size)
            if not why:
                return _result(index, a, True, f"{size} bytes downloaded by the host (direct)", t0)
            if a.via == "direct":
                return _result(index, a, False, f"download failed: {redact(why)[:300]}", t0)
            log.warning("%s: direct download failed, falling back to SFTP: %s", a.host, why)
            fell_back = f"; via SFTP: the direct download failed: {redact(why)[:200]}"
        download(conn, store, a.key, a.path, a.manifest, progress)
    except (ContingencyError, OSError) as exc:
        why = f"download failed: {redact(str(exc))[:300]}{fell_back}"
        return _result(index, a, False, why, t0)
    return _result(index, a, True, f"{size} bytes relayed over SFTP{fell_back}", t0)


def http(index: int, a: HttpAction) -> StepResult:
    t0 = time.monotonic()
    try:
        resp = requests.request(a.method, a.url, timeout=a.timeout_s)
    except requests.RequestException as exc:
        return _result(index, a, False, f"{a.method} {a.url}: {type(exc).__name__}", t0)
    ok = resp.status_code == a.expect_status
    return _result(index, a, ok, f"{a.method} {a.url} → {resp.status_code}", t0)


def _driver(index: int, a: Action, res: DriverResult, t0: float) -> StepResult:
    return _result(index, a, res.ok, f"{res.driver} {res.action}: {res.detail}", t0)


def dns(index: int, a: DnsAction, inv: Inventory) -> StepResult:
    t0 = time.monotonic()
    try:
        return _driver(index, a, apply_dns(a.address, inv.host(a.to_host)), t0)
    except ContingencyError as exc:
        return _result(index, a, False, redact(str(exc))[:300], t0)


def route(index: int, a: RouteAction, inv: Inventory) -> StepResult:
    t0 = time.monotonic()
    link = inv.links[a.link]
    try:
        return _driver(index, a, driver_for(link).activate(link, inv), t0)
    except ContingencyError as exc:
        return _result(index, a, False, redact(str(exc))[:300], t0)


def wait(index: int, a: WaitAction, inv: Inventory) -> StepResult:
    t0 = time.monotonic()
    if a.service is None:
        time.sleep(a.seconds or 0)
        return _result(index, a, True, f"waited {a.seconds or 0:g}s", t0)
    limit = a.seconds if a.seconds is not None else a.timeout_s
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if check_service(inv.service(a.service), inv).healthy:
            return _result(index, a, True, f"{a.service} healthy", t0)
        time.sleep(0.5)
    return _result(index, a, False, f"{a.service} still unhealthy", t0)


class VerifyResult(BaseModel):
    recovered: bool
    attempts: list[ProbeResult]
    waited_s: float = 0.0

    @property
    def ok(self) -> bool:
        return self.recovered


def verify_recovery(service: Service, inv: Inventory) -> VerifyResult:
    """Re-probe with exponential backoff until healthy or the service's deadline passes."""
    policy = service.verify
    started = time.monotonic()
    delay = policy.first_delay_s
    attempts: list[ProbeResult] = []
    while True:
        time.sleep(delay)
        result = check_service(service, inv)
        attempts.append(result)
        elapsed = time.monotonic() - started
        if result.healthy or elapsed >= policy.deadline_s:
            return VerifyResult(recovered=result.healthy, attempts=attempts, waited_s=elapsed)
        delay = min(
            max(delay, 0.2) * policy.backoff, policy.max_interval_s, policy.deadline_s - elapsed
        )


def verify_via(link: Link, inv: Inventory) -> tuple[bool, str]:
    """The default route uses ``link`` and its targets answer along the default route."""
    on_route, detail = False, ""
    for i in range(VERIFY_ROUNDS):
        if i:
            time.sleep(max(link.policy.probe_interval_s, 0.2))
        probe = probe_link(link, inv, bind=False)
        on_route = link.driver.kind != "linux-route" or routes_via(link, inv)
        detail = probe.detail
        if on_route and probe.state == "up":
            return True, f"default route via {link.name}; {probe.detail}"
    return False, f"after {VERIFY_ROUNDS} checks: route via {link.name}={on_route}, {detail}"


def probe(index: int, a: ProbeAction, inv: Inventory) -> StepResult:
    t0 = time.monotonic()
    if a.link is not None:
        ok, detail = verify_via(inv.links[a.link], inv)
        return _result(index, a, ok, detail, t0)
    svc = inv.service(a.service or "")
    if a.on_host:
        svc = svc.model_copy(update={"host": a.on_host})
    if a.until_healthy:
        check = verify_recovery(svc, inv)
        word = "healthy" if check.recovered else "still unhealthy"
        detail = f"{svc.name}: {word} after {len(check.attempts)} checks, {check.waited_s:.1f}s"
        return _result(index, a, check.recovered, detail, t0)
    res = check_service(svc, inv)
    word = "healthy" if res.healthy else "unhealthy"
    return _result(index, a, res.healthy, f"{svc.name}: {word} ({res.detail})", t0)


def notify(
    index: int, a: NotifyAction, inv: Inventory, pager: Pager | None, fields: dict[str, object]
) -> StepResult:
    """The message to its role: through the incident's pager when there is one (so a
    drill pages nobody and the report lists the delivery), else sent directly."""
    t0 = time.monotonic()
    role = RoleName(a.role)
    level = logging.ERROR if a.event == "escalation" else logging.INFO
    log.log(level, "notice (%s) to %s: %s", a.event, a.role, a.message)
    fields = {**fields, "summary": a.message}
    if pager is not None:
        pager.event(a.event, fields, roles=(role,))
        return _result(index, a, True, f"notice to {a.role} queued", t0)
    from tasks.notify import send

    sent = send(a.event, inv, fields, roles=(role,))
    return _result(index, a, True, f"notified {a.role} ({sum(d.ok for d in sent)}/{len(sent)})", t0)


def evidence(index: int, a: EvidenceAction, inv: Inventory, facts: dict[str, object]) -> StepResult:
    """Keep the evidence (``tasks/security/evidence.py``); the manifest goes to
    ``facts["evidence"]`` for the report. A failure stops the plan before any change."""
    from tasks.security.evidence import collect
    from tasks.ssh.run import current_run_id

    t0 = time.monotonic()
    location = inv.security_policy(a.host).evidence_location
    if location is None:
        return _result(index, a, False, "no evidence_location in the security section", t0)
    try:
        manifest = collect(inv.host(a.host), a.items, location, current_run_id() or "local")
    except HostKeyError:
        raise
    except ContingencyError as exc:
        return _result(index, a, False, f"{type(exc).__name__}: {redact(str(exc))[:200]}", t0)
    facts["evidence"] = manifest
    detail = (
        f"{len(manifest.items)} items kept; manifest s3://{manifest.bucket}/"
        f"{manifest.manifest_key} (SHA-256 {manifest.manifest_sha256[:16]}…)"
    )
    return _result(index, a, True, detail, t0)
