"""The one outcome vocabulary: how an incident (or a drill's incident) ended.

Every member carries its properties, so reports, ``/metrics``, ``contingency stats``
and the notifications read them instead of matching strings:

- ``ok``: the incident needs nobody (Completed); not ok → a human must take over
  (the run ends ``Escalated``, or ``Interrupted``);
- ``recovers``: the plan acted and the target works again;
- ``ran``: something was (or may have been) run on the estate;
- ``needs_human``: the opposite of ``ok``.

>>> Outcome("restored").recovers, Outcome.frozen.ran, Outcome.frozen.needs_human
(True, False, True)
>>> Outcome.parse("no such outcome")
<Outcome.failed: 'failed'>
"""

from __future__ import annotations

from enum import StrEnum

INTERRUPTED = "Interrupted"
"""Name of the final state of a run whose gate or process was lost (a Failed state when
the run said so itself, a Crashed one when the reconciler found it dead)."""


class Outcome(StrEnum):
    # the plan acted and the target works again
    recovered = "recovered"
    restored = "restored"
    failed_over = "failed_over"
    failed_back = "failed_back"
    runbook_completed = "runbook_completed"
    # nothing needed doing, or a person decided: ok, nothing ran
    healthy = "healthy"
    not_confirmed = "not_confirmed"
    on_backup = "on_backup"
    dry_run = "dry_run"
    rejected = "rejected"
    cleared = "cleared"
    joined = "joined"
    # stopped before acting: a human must look
    undetermined = "undetermined"
    not_approved = "not_approved"
    interrupted = "interrupted"
    frozen = "frozen"
    blast_radius = "blast_radius"
    cooldown = "cooldown"
    flapping = "flapping"
    rate_capped = "rate_capped"
    unroutable = "unroutable"
    unsupported = "unsupported"
    bad_parameters = "bad_parameters"
    no_backup = "no_backup"
    no_healthy_backup = "no_healthy_backup"
    backup_down = "backup_down"
    standby_down = "standby_down"
    failback_waiting = "failback_waiting"
    held = "held"
    """A security incident holds the host: automatic restarts and fencing wait."""
    # acted (or may have) and did not recover: a human must take over
    not_recovered = "not_recovered"
    outcome_unknown = "outcome_unknown"
    restore_failed = "restore_failed"
    switch_failed = "switch_failed"
    failover_failed = "failover_failed"
    runbook_failed = "runbook_failed"
    runbook_partial = "runbook_partial"
    contained = "contained"
    """A security incident: evidence kept, the host isolated; people investigate."""
    failed = "failed"
    crashed = "crashed"

    @property
    def ok(self) -> bool:
        return self in _OK

    @property
    def needs_human(self) -> bool:
        return not self.ok

    @property
    def recovers(self) -> bool:
        """The plan acted and the target works again."""
        return self in _RECOVERED

    @property
    def ran(self) -> bool:
        """Something was, or may have been, run on the estate."""
        return self in _RECOVERED or self in _RAN_FAILED

    @property
    def page_event(self) -> str:
        """The notification that closes an incident with this outcome."""
        if self is Outcome.interrupted:
            return "incident_interrupted"
        if self in (Outcome.failed, Outcome.not_approved):
            return "failure"  # everyone hears that it failed or was never approved
        return "finished" if self.ok else "escalation"

    @classmethod
    def parse(cls, text: str) -> Outcome:
        """A stored outcome (an old report, a tag); anything unknown reads ``failed``."""
        try:
            return cls(text)
        except ValueError:
            return cls.failed


_RECOVERED = frozenset(
    {
        Outcome.recovered,
        Outcome.restored,
        Outcome.failed_over,
        Outcome.failed_back,
        Outcome.runbook_completed,
    }
)
_OK = _RECOVERED | {
    Outcome.healthy,
    Outcome.not_confirmed,
    Outcome.on_backup,
    Outcome.dry_run,
    Outcome.rejected,
    Outcome.cleared,
    Outcome.joined,
}
_RAN_FAILED = frozenset(
    {
        Outcome.not_recovered,
        Outcome.outcome_unknown,
        Outcome.restore_failed,
        Outcome.switch_failed,
        Outcome.failover_failed,
        Outcome.runbook_failed,
        Outcome.runbook_partial,
        Outcome.contained,
        Outcome.failed,
        Outcome.crashed,
    }
)
NEVER_RAN = frozenset(o for o in Outcome if not o.ran)
"""Outcomes where nothing was run on the estate."""
