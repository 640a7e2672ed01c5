"""The normalized alert every intake produces and every flow consumes."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, Field


class Alert(BaseModel):
    """One alert, whatever its source. Labels select a plan and a target by name;
    nothing in an alert is ever put into a command."""

    source: Literal["alertmanager", "grafana", "generic", "cli"] = "generic"
    status: Literal["firing", "resolved"] = "firing"
    fingerprint: str = Field(min_length=1, max_length=128)
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    starts_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    ends_at: datetime | None = None
    generator_url: str | None = None
    received_at: datetime = Field(default_factory=lambda: datetime.now(UTC))

    @property
    def name(self) -> str:
        return self.labels.get("alertname", "alert")

    def idempotency_key(self) -> str:
        """Unique per (fingerprint, start): a re-send starts nothing new, a new firing does."""
        return f"{self.fingerprint}:{self.starts_at.astimezone(UTC).isoformat()}"
