"""Grafana alerting webhook payload (version "1"), normalized to inventory ``Alert``."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from contingency.intake.schemas import LabelMap, normalize_webhook_alerts
from inventory.alert import Alert


class GrafanaAlert(BaseModel):
    status: Literal["firing", "resolved"]
    labels: LabelMap = Field(min_length=1)
    annotations: LabelMap = Field(default_factory=dict)
    startsAt: datetime  # noqa: N815 - Grafana's field names
    endsAt: datetime | None = None  # noqa: N815
    generatorURL: str | None = None  # noqa: N815
    fingerprint: str | None = Field(None, min_length=1, max_length=128)


class GrafanaPayload(BaseModel):
    """Extra Grafana fields (orgId, title, message, state, values, ...) are ignored."""

    version: Literal["1"]
    status: Literal["firing", "resolved"]
    receiver: str = ""
    groupKey: str = ""  # noqa: N815
    alerts: list[GrafanaAlert] = Field(min_length=1, max_length=1000)

    def normalized(self) -> list[Alert]:
        return normalize_webhook_alerts("grafana", self.alerts, self.groupKey)
