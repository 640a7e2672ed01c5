"""Webhook payloads: Alertmanager (version 4) and the generic JSON schema."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

from inventory.alert import Alert

LabelMap = dict[str, str]


class AMAlert(BaseModel):
    status: Literal["firing", "resolved"]
    labels: LabelMap
    annotations: LabelMap = Field(default_factory=dict)
    startsAt: datetime  # noqa: N815 - Alertmanager's field names
    endsAt: datetime | None = None  # noqa: N815
    generatorURL: str | None = None  # noqa: N815
    fingerprint: str | None = None


class AlertmanagerPayload(BaseModel):
    """Alertmanager webhook body, version 4: several alerts per post."""

    version: Literal["4"]
    groupKey: str = ""  # noqa: N815
    status: Literal["firing", "resolved"]
    receiver: str = ""
    alerts: list[AMAlert] = Field(min_length=1, max_length=1000)

    def normalized(self) -> list[Alert]:
        return normalize_webhook_alerts("alertmanager", self.alerts, self.groupKey)


class WebhookAlert(Protocol):
    """The alert fields Alertmanager and Grafana webhooks share."""

    status: Literal["firing", "resolved"]
    labels: LabelMap
    annotations: LabelMap
    startsAt: datetime  # noqa: N815
    endsAt: datetime | None  # noqa: N815
    generatorURL: str | None  # noqa: N815
    fingerprint: str | None


def normalize_webhook_alerts(
    source: Literal["alertmanager", "grafana"], alerts: Sequence[WebhookAlert], group: str = ""
) -> list[Alert]:
    """Alertmanager-shaped alerts (Grafana sends the same fields) → normalized alerts.
    Alertmanager marks "no end" with the zero time ``0001-01-01``."""
    return [
        Alert(
            source=source,
            status=a.status,
            fingerprint=a.fingerprint or fingerprint_of(a.labels),
            labels=a.labels,
            annotations=a.annotations,
            starts_at=a.startsAt,
            ends_at=a.endsAt if a.endsAt and a.endsAt.year > 1 else None,
            generator_url=a.generatorURL,
            group=group[:1024],
        )
        for a in alerts
    ]


class GenericAlert(BaseModel):
    """One alert in the generic JSON schema (``POST /webhook/generic``).

    ``{"alerts": [{"labels": {"alertname": "ServiceDown", "service": "web"},
    "status": "firing", "starts_at": "2026-11-28T10:00:00Z"}]}``
    """

    model_config = ConfigDict(extra="forbid")
    labels: LabelMap = Field(min_length=1)
    annotations: LabelMap = Field(default_factory=dict)
    status: Literal["firing", "resolved"] = "firing"
    starts_at: datetime | None = None
    fingerprint: str | None = Field(None, min_length=1, max_length=128)
    source_url: str | None = None


class GenericPayload(BaseModel):
    model_config = ConfigDict(extra="forbid")
    alerts: list[GenericAlert] = Field(min_length=1, max_length=1000)

    def normalized(self) -> list[Alert]:
        now = datetime.now(UTC)
        return [
            Alert(
                source="generic",
                status=a.status,
                fingerprint=a.fingerprint or fingerprint_of(a.labels),
                labels=a.labels,
                annotations=a.annotations,
                starts_at=a.starts_at or now.replace(second=0, microsecond=0),
                generator_url=a.source_url,
            )
            for a in self.alerts
        ]


def fingerprint_of(labels: LabelMap) -> str:
    """Stable fingerprint of a label set (sorted JSON, SHA-256, 16 hex digits)."""
    raw = json.dumps(labels, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(raw).hexdigest()[:16]


class IncidentRef(BaseModel):
    fingerprint: str
    status: str
    flow_run_id: str | None = None
    deduplicated: bool = False
    note: str = ""


class IntakeResponse(BaseModel):
    accepted: int
    incidents: list[IncidentRef]
