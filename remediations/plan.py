"""Plans are data: a remediation turns facts into a :class:`Plan` of typed actions.

Every action says where it acts, exactly what it runs (the command, the request, the
object copied), its risk, whether it is idempotent, whether it changes anything, what
verifies it and, where it can be undone, its rollback. Nothing is a placeholder: the
values (a restore's timestamped paths, a DNS record's new address) are fixed when the
plan is built, so the approver sees exactly what runs. One executor
(``remediations/executor.py``) runs any plan; a plan never runs anything itself.

>>> step = SshAction(host="app-1", command="systemctl restart web", description="restart web")
>>> plan = Plan(plan=PlanName.software_crash, target="web", actions=[step])
>>> plan.hosts, plan.actions[0].shown, plan.actions[0].changes
(['app-1'], 'systemctl restart web', True)
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field

from inventory.models import PlanName
from inventory.network import DnsAddress
from inventory.outcomes import Outcome
from tasks.storage import Manifest

Risk = Literal["low", "medium", "high"]
OnFailure = Literal["stop", "continue", "escalate"]
LOCAL = "(contingency)"
"""Where an action runs when it runs in the incident's own process."""


class Step(BaseModel):
    """What every action has, whatever its kind."""

    description: str = ""
    name: str = ""
    """A short name (the Prefect task's name for the step; a runbook's step name)."""
    risk: Risk = "low"
    idempotent: bool = True
    changes: bool = True
    """It changes the estate: the rails are checked again right before it runs."""
    verify: str = ""
    """What tells that it worked (shown in the plan)."""
    on_failure: OnFailure = "stop"
    """``stop`` ends the plan (then rollback, escalate); ``continue`` notes it and goes
    on; ``escalate`` pages the command center at once, goes on, and the plan ends
    needing a human."""
    fails_as: Outcome | None = None
    """The outcome if the plan stops at this step (default: the plan's ``failure``)."""
    rollback: list[Action] = Field(default_factory=list)
    """What undoes this step; run (newest first) when a later step stops the plan."""

    @property
    def where(self) -> str:
        return LOCAL

    @property
    def touched(self) -> list[str]:
        """The hosts it acts on (the blast radius)."""
        return [self.where]

    @property
    def shown(self) -> str:
        """Exactly what runs, as the approver sees it."""
        return self.description


class SshAction(Step):
    kind: Literal["ssh"] = "ssh"
    host: str
    command: str
    timeout_s: float = 600.0
    ok_codes: list[int] = Field(default_factory=lambda: [0])
    failures: dict[int, str] = Field(default_factory=dict)
    """Exit status → what it means (shown in the report when the step stops the plan)."""

    @property
    def where(self) -> str:
        return self.host

    @property
    def shown(self) -> str:
        return self.command


class TransferAction(Step):
    """Copy one backup object from object storage to a path on a host — via SFTP,
    checking its SHA-256 on the fly, or downloaded by the host itself (``via`` is the
    dataset's ``restore_via``); the host-side checks are the next ssh step."""

    kind: Literal["transfer"] = "transfer"
    dataset: str
    host: str
    bucket: str
    key: str
    path: str
    manifest: Manifest
    via: Literal["sftp", "direct", "auto"] = "sftp"

    @property
    def where(self) -> str:
        return self.host

    @property
    def shown(self) -> str:
        how = {"sftp": "", "direct": " (the host downloads it)",
               "auto": " (the host downloads it, else SFTP)"}[self.via]  # fmt: skip
        return (
            f"copy s3://{self.bucket}/{self.key} → {self.host}:{self.path}{how} "
            f"({self.manifest.size} bytes, SHA-256 {self.manifest.sha256})"
        )


class HttpAction(Step):
    kind: Literal["http"] = "http"
    method: str = "GET"
    url: str
    expect_status: int = 200
    timeout_s: float = 30.0

    @property
    def shown(self) -> str:
        return f"{self.method} {self.url} → {self.expect_status}"


class DnsAction(Step):
    """Point a DNS A record at a host (the provider's API; the token is a secret name)."""

    kind: Literal["dns"] = "dns"
    address: DnsAddress
    to_host: str
    shown_as: str

    @property
    def where(self) -> str:
        return f"dns {self.address.record}.{self.address.zone}"

    @property
    def shown(self) -> str:
        return self.shown_as


class RouteAction(Step):
    """Make a link carry its router's default traffic (the link's failover driver)."""

    kind: Literal["route"] = "route"
    link: str
    host: str
    """The router, or ``controller``."""
    shown_as: str

    @property
    def where(self) -> str:
        return self.host

    @property
    def shown(self) -> str:
        return self.shown_as


class WaitAction(Step):
    kind: Literal["wait"] = "wait"
    changes: bool = False
    seconds: float | None = None
    service: str | None = None
    """Wait until this service is healthy (at most ``timeout_s``)."""
    timeout_s: float = 60.0
    on_host: str | None = None
    """Where the waited-for service runs (shown; the wait itself runs here)."""

    @property
    def where(self) -> str:
        return self.on_host or LOCAL

    @property
    def shown(self) -> str:
        if self.service:
            limit = self.seconds if self.seconds is not None else self.timeout_s
            return f"wait until {self.service} is healthy (at most {limit:g}s)"
        return f"wait {self.seconds or 0:g}s"


class ProbeAction(Step):
    """Read-only check: a service's health (once, or until healthy within the service's
    verify policy), or a link carrying the default route and passing traffic."""

    kind: Literal["probe"] = "probe"
    changes: bool = False
    service: str | None = None
    on_host: str | None = None
    """Check the service as if it ran on this host (after a move to a standby)."""
    link: str | None = None
    until_healthy: bool = False

    @property
    def where(self) -> str:
        return self.on_host or LOCAL

    @property
    def shown(self) -> str:
        if self.link:
            return f"default route via {self.link} and its probe targets answer"
        again = " until healthy (verify policy)" if self.until_healthy else ""
        return f"health check of {self.service}{again}"


class NotifyAction(Step):
    kind: Literal["notify"] = "notify"
    changes: bool = False
    role: str
    message: str
    event: str = "runbook_notice"

    @property
    def shown(self) -> str:
        return f"notify {self.role}: {self.message}"


class EvidenceAction(Step):
    """Keep evidence from a host before any change: each read-only command's output
    (and the listed files' SHA-256), uploaded to object storage with its SHA-256
    (``tasks/security/evidence.py``)."""

    kind: Literal["evidence"] = "evidence"
    changes: bool = False
    host: str
    items: list[tuple[str, str]]
    """``(name, command)``: read-only commands whose output is kept."""
    bucket: str

    @property
    def where(self) -> str:
        return self.host

    @property
    def shown(self) -> str:
        names = ", ".join(name for name, _ in self.items)
        return f"keep evidence ({names}) in s3://{self.bucket}, each with its SHA-256"


class RollingAction(Step):
    """A service's restart commands on each of its instances, batch by batch, each
    batch's health verified before the next (``remediations/fan_out.py``)."""

    kind: Literal["rolling"] = "rolling"
    service: str
    instances: list[tuple[str, str]]
    """``(instance, host)`` in rollout order."""
    commands: list[str]
    batch_size: int = 1
    max_unavailable: int = 1
    stop_failure_pct: float = 0.0
    timeout_s: float = 600.0

    @property
    def batch(self) -> int:
        """Instances restarted at once: ``batch_size``, never above ``max_unavailable``."""
        return max(1, min(self.batch_size, self.max_unavailable))

    @property
    def where(self) -> str:
        return f"{len(self.instances)} hosts"

    @property
    def touched(self) -> list[str]:
        return sorted({host for _, host in self.instances})

    @property
    def shown(self) -> str:
        hosts = ", ".join(host for _, host in self.instances)
        cmds = " && ".join(self.commands)
        return (
            f"{cmds} on {hosts}: batches of {self.batch}, "
            f"at most {self.max_unavailable} unavailable, stop when more than "
            f"{self.stop_failure_pct:g}% fail"
        )


class ApprovalAction(Step):
    """A sign-off in the middle of a plan (a runbook's approval step)."""

    kind: Literal["approval"] = "approval"
    changes: bool = False

    @property
    def shown(self) -> str:
        return "sign-off by the command center"


Action = Annotated[
    SshAction
    | TransferAction
    | HttpAction
    | DnsAction
    | RouteAction
    | WaitAction
    | ProbeAction
    | NotifyAction
    | EvidenceAction
    | RollingAction
    | ApprovalAction,
    Field(discriminator="kind"),
]
KINDS = (
    "ssh", "transfer", "http", "dns", "route", "wait", "probe", "notify", "evidence", "rolling",
    "approval",
)  # fmt: skip


class Plan(BaseModel):
    plan: PlanName
    target: str
    actions: list[Action] = Field(default_factory=list)
    verify: list[Action] = Field(default_factory=list)
    """Checks after the last action (also after a step whose outcome is unknown): all
    must pass, else the plan rolls back what declares a rollback and ends
    ``unrecovered``."""
    after: list[Action] = Field(default_factory=list)
    """Run once the plan succeeded (a hardware ticket to operations)."""
    requires_approval: bool = False
    destructive: bool = False
    """Destructive plans (restores, failovers, fencing) need two different approvers."""
    reason: str = ""
    label: str = ""
    """How messages name the plan ("runbook tidy"); default "<plan> on <target>"."""
    choices: list[str] = Field(default_factory=list)
    """What the approver may pick in the sign-off form (e.g. restore points); the
    remediation rebuilds the plan for the pick, and the report shows what ran."""
    success: Outcome = Outcome.recovered
    success_message: str = ""
    failure: Outcome = Outcome.failed
    """The outcome when a step stops the plan."""
    unrecovered: Outcome = Outcome.not_recovered
    """The outcome when the verification fails."""
    already: Outcome | None = None
    """Set when the facts say nothing needs doing (a healthy service): a dry run still
    shows the plan, a real run ends with this outcome and ``already_message``."""
    already_message: str = ""
    facts: dict[str, str] = Field(default_factory=dict)
    """Values fixed when the plan was built that the report names (a restore's paths)."""

    @property
    def hosts(self) -> list[str]:
        """Where the plan changes something (the blast radius): probes, waits, notices
        and sign-offs run in the incident itself and touch no host."""
        return sorted({h for a in self.actions if a.changes for h in a.touched})

    @property
    def risk(self) -> Risk:
        order = {"low": 0, "medium": 1, "high": 2}
        return max((a.risk for a in self.actions), key=order.__getitem__, default="low")

    def as_markdown(self) -> str:
        lines = [f"**Plan** `{self.plan}` on `{self.target}` — {self.reason}", ""]
        lines += [
            f"Hosts affected (blast radius): {len(self.hosts)} — {', '.join(self.hosts)}"
            + ("; **destructive: two approvers needed**" if self.destructive else ""),
            "",
        ]
        lines += [
            "| # | kind | where | exactly | risk | idempotent | undo |",
            "|---|---|---|---|---|---|---|",
        ]
        for i, a in enumerate(self.actions, 1):
            undo = "; ".join(f"`{r.shown}`" for r in a.rollback) or "—"
            lines.append(
                f"| {i} | {a.kind} | {a.where} | `{a.shown}` | {a.risk} | {a.idempotent} | {undo} |"
            )
        if self.verify:
            lines += ["", "Verified by: " + "; ".join(v.shown for v in self.verify)]
        if self.after:
            lines += ["", "Then: " + "; ".join(v.shown for v in self.after)]
        return "\n".join(lines)


for _model in (
    Step,
    SshAction,
    TransferAction,
    HttpAction,
    DnsAction,
    RouteAction,
    WaitAction,
    ProbeAction,
    NotifyAction,
    RollingAction,
    ApprovalAction,
    Plan,
):
    _model.model_rebuild()
