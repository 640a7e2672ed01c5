"""Prometheus metrics for the intake, one ``CollectorRegistry`` per app.

Other code records outcomes through the hook functions (``incident_outcome``,
``observe_remediation``, ``observe_gate_wait``) so it never touches metric objects directly.
"""

from __future__ import annotations

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

DURATION_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200)
DISPATCH_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800)


class IntakeMetrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.received = Counter(
            "contingency_alerts_received", "Alerts received", ["source", "status"], registry=r
        )
        self.deduplicated = Counter(
            "contingency_alerts_deduplicated",
            "Alerts answered by an existing incident",
            ["source"],
            registry=r,
        )
        self.rejected = Counter(
            "contingency_alerts_rejected", "Requests refused", ["endpoint", "reason"], registry=r
        )
        self.dedup_cache_hits = Counter(
            "contingency_alerts_dedup_cache_hits",
            "Re-sent alerts answered from this replica's cache, without a Prefect API call",
            registry=r,
        )
        # Labelled by plan, not alertname: label values must not come from alert text.
        self.started = Counter(
            "contingency_incidents_started",
            "Incidents started, by routed plan (or unroutable)",
            ["plan"],
            registry=r,
        )
        self.outcomes = Counter(
            "contingency_incidents_outcome", "Incident outcomes", ["plan", "outcome"], registry=r
        )
        self.by_severity = Counter(
            "contingency_incidents_severity",
            "Finished incidents by severity level (the inventory's level names)",
            ["severity"],
            registry=r,
        )
        self.remediation_seconds = Histogram(
            "contingency_remediation_duration_seconds",
            "Remediation duration",
            ["plan"],
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self.gate_wait_seconds = Histogram(
            "contingency_gate_wait_seconds",
            "Time an approval gate waited",
            ["plan", "decision"],
            buckets=DURATION_BUCKETS,
            registry=r,
        )

        self.absorbed = Counter(
            "contingency_alerts_absorbed",
            "Alerts joined to an open incident of their cause (no incident of their own)",
            registry=r,
        )
        self.dispatch_errors = Counter(
            "contingency_dispatch_errors",
            "Stored alerts whose incident could not be started yet (retried)",
            registry=r,
        )
        self.queue_depth = Gauge(
            "contingency_intake_queue_depth",
            "Alerts stored (answered 202) and not yet turned into or joined to an incident",
            registry=r,
        )
        self.dispatch_seconds = Histogram(
            "contingency_alert_dispatch_seconds",
            "From an alert stored (its 202) to its incident started or joined",
            buckets=DISPATCH_BUCKETS,
            registry=r,
        )
        self.runs_waiting = Gauge(
            "contingency_incident_runs_waiting",
            "Incident runs created and waiting for a slot (the pool's concurrency cap)",
            registry=r,
        )

    def incident_outcome(self, plan: str, outcome: str) -> None:
        self.outcomes.labels(plan=plan, outcome=outcome).inc()

    def observe_remediation(self, plan: str, seconds: float) -> None:
        self.remediation_seconds.labels(plan=plan).observe(seconds)

    def observe_gate_wait(self, plan: str, decision: str, seconds: float) -> None:
        self.gate_wait_seconds.labels(plan=plan, decision=decision).observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
