"""Security-incident plan (安全事件, the security-monitoring team's: prevent external
attacks and internal leaks): hold the host, keep the evidence, isolate it.

1. **Hold** (when the plan starts, before anything else): automatic restarts, fencing
   and every other plan's changes on the host wait (``tasks/security/holds.py``,
   checked by the rails) until a person releases it — evidence is not destroyed.
2. **Evidence before any change** (read-only): processes, connections, logins, the
   firewall, the SHA-256 of listed files — each output uploaded to object storage with
   its SHA-256, and a manifest (``tasks/security/evidence.py``). No evidence, no change.
3. **Two approvals, always**: the plan is destructive, so the sign-off needs two
   different command-center members whatever the gate policy says.
4. **Isolate**: an nftables table on the host drops every packet in and out except
   loopback and the ``allow_from`` networks (the management network the worker's SSH
   comes from); verified by reading the table back; undone by deleting it.
5. The security-monitoring team is told; the incident ends ``contained`` — Escalated:
   people investigate, block an address or an account through runbook steps, and
   release the host (``contingency security release HOST --as NAME``).
"""

from __future__ import annotations

from inventory.models import Host, PlanName, RoleName
from inventory.outcomes import Outcome
from inventory.security import SecurityPolicy
from remediations.context import IncidentContext, Verdict
from remediations.plan import EvidenceAction, NotifyAction, Plan, SshAction

STEP_TIMEOUT_S = 60.0


def build_plan(host: Host, policy: SecurityPolicy, reason: str = "") -> Plan:
    """Evidence → isolate (undo: lift it) → verify; then tell security monitoring. Pure."""
    if policy.evidence_location is None:
        raise ValueError("a security plan needs an evidence_location")
    items = [(e.name, e.command) for e in policy.evidence]
    items.append(("file-hashes", policy.hash_command()))
    allowed = ", ".join(policy.allow_from)
    release = SshAction(
        host=host.name, command=policy.release_command(), name="lift isolation",
        description=f"lift the isolation of {host.name}", risk="high", timeout_s=STEP_TIMEOUT_S,
    )  # fmt: skip
    return Plan(
        plan=PlanName.security_incident,
        target=host.name,
        actions=[
            EvidenceAction(
                host=host.name,
                items=items,
                bucket=policy.evidence_location.bucket,
                name="keep evidence",
                description=f"keep evidence from {host.name}",
            ),
            SshAction(
                host=host.name,
                command=policy.isolate_command(),
                name="isolate",
                description=f"isolate {host.name}: only {allowed} reach it (nftables)",
                risk="high",
                idempotent=True,
                timeout_s=STEP_TIMEOUT_S,
                rollback=[release],
            ),
        ],  # fmt: skip
        verify=[
            SshAction(
                host=host.name,
                command=policy.check_command(),
                changes=False,
                name="verify isolation",
                description="the isolation table is in place",
                timeout_s=STEP_TIMEOUT_S,
            )
        ],  # fmt: skip
        after=[
            NotifyAction(
                role=RoleName.security_monitoring.value,
                event="escalation",
                name="tell security",
                message=(
                    f"{host.name} is isolated (only {allowed} reach it) and held: automatic "
                    "restarts and fencing wait. Evidence is in object storage (see the "
                    f"report). Release: contingency security release {host.name} --as NAME"
                ),
            )
        ],  # fmt: skip
        requires_approval=True,
        destructive=True,  # two different approvers, whatever the gate policy says
        reason=reason or f"security incident on {host.name}",
        success=Outcome.contained,
        success_message=(
            f"{host.name}: evidence kept, host isolated and held; people investigate "
            f"and release it (`contingency security release {host.name}`)"
        ),
        failure=Outcome.failed,
        unrecovered=Outcome.not_recovered,
    )


def _host(ctx: IncidentContext) -> Host | Verdict:
    kind = ctx.decision.target_kind
    if kind == "host":
        return ctx.inv.host(ctx.target)
    if kind == "service":
        return ctx.inv.host(ctx.inv.service(ctx.target).host)
    return Verdict(
        outcome=Outcome.unsupported,
        message=f"{ctx.target} is a {kind}; the security plan acts on a host or a service's host",
    )


def prepare(ctx: IncidentContext) -> Plan | Verdict:
    """Check the section, hold the host (not in a dry run), then the plan."""
    host = _host(ctx)
    if isinstance(host, Verdict):
        return host
    policy = ctx.inv.security_policy(host.name)
    where = f"security.{host.name if host.name in ctx.inv.security else 'default'}"
    if not policy.allow_from:
        return Verdict(
            outcome=Outcome.bad_parameters,
            message=f"{where}.allow_from is empty: isolating {host.name} would cut the "
            "worker off too; nothing was done",
        )
    if policy.evidence_location is None:
        return Verdict(
            outcome=Outcome.bad_parameters,
            message=f"{where}.evidence_location is not set: evidence comes before any "
            "change; nothing was done",
        )
    reason = f"security incident on {host.name} ({ctx.alert.name}): keep evidence, then isolate"
    if not ctx.dry_run:
        _hold(ctx, host.name, reason)
    return build_plan(host, policy, reason)


def _hold(ctx: IncidentContext, host: str, reason: str) -> None:
    from tasks.prefect_api import get_client, retry_api
    from tasks.security.holds import hold
    from tasks.ssh.run import current_run_id

    def put() -> str:
        with get_client(sync_client=True) as client:
            return hold(client, host, current_run_id(), reason).run_id

    holder = retry_api(put, "hold the host")
    ctx.event("hold", f"{host} held: automatic restarts and fencing wait (incident {holder})")
    ctx.facts["hold"] = host


def finish(ctx: IncidentContext, plan: Plan, verdict: Verdict) -> Verdict:
    """The report's Evidence and Security hold sections."""
    manifest = ctx.facts.get("evidence")
    if manifest is not None:
        ctx.sections["Evidence"] = manifest.as_markdown()  # type: ignore[attr-defined]
    if (host := ctx.facts.get("hold")) is not None:
        ctx.sections["Security hold"] = (
            f"`{host}` is held: automatic restarts, fencing and other plans' changes wait "
            f"until a person releases it: `contingency security release {host} --as NAME`."
        )
    return verdict
