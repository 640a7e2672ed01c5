"""The normalized alert every intake produces and every flow consumes."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, Field


class Alert(BaseModel):
    """One alert, whatever its source. Labels select a plan and a target by name;
    nothing in an alert is ever put into a command."""

    source: Literal["alertmanager", "grafana", "generic", "cli", "human"] = "generic"
    status: Literal["firing", "resolved"] = "firing"
    fingerprint: str = Field(min_length=1, max_length=128)
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    starts_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    ends_at: datetime | None = None
    generator_url: str | None = None
    received_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    group: str = Field("", max_length=1024)
    """The sender's grouping hint: Alertmanager's or Grafana's ``groupKey``. Kept with the
    alert and shown in the report; correlation itself follows the inventory's topology."""

    @property
    def name(self) -> str:
        return self.labels.get("alertname", "alert")

    def idempotency_key(self) -> str:
        """Unique per (fingerprint, start): a re-send starts nothing new, a new firing does."""
        return f"{self.fingerprint}:{self.starts_at.astimezone(UTC).isoformat()}"

    @property
    def priority(self) -> int:
        """0 (most urgent) … 3 from the ``severity`` label; unknown or missing: 2."""
        return SEVERITY_PRIORITY.get(self.labels.get("severity", "").lower(), 2)


SEVERITY_PRIORITY = {
    "critical": 0, "emergency": 0, "page": 0, "p1": 0, "sev1": 0, "fatal": 0,
    "high": 1, "major": 1, "error": 1, "p2": 1, "sev2": 1,
    "warning": 2, "warn": 2, "medium": 2, "p3": 2, "sev3": 2,
    "info": 3, "low": 3, "minor": 3, "none": 3, "p4": 3, "sev4": 3,
}  # fmt: skip
"""Severity label (lower case) → queue priority; a storm of low ones waits behind a
critical one (outbox order and the work queue an incident runs from)."""
