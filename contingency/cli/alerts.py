"""Build and post test alerts in Alertmanager's webhook format (``contingency alert send``)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import requests

from contingency.intake.schemas import fingerprint_of
from inventory.settings import Settings


def alertmanager_payload(
    labels: dict[str, str],
    annotations: dict[str, str] | None = None,
    status: str = "firing",
    starts_at: datetime | None = None,
) -> dict[str, Any]:
    """An Alertmanager webhook (version 4) body carrying one alert."""
    starts = (starts_at or datetime.now(UTC)).isoformat().replace("+00:00", "Z")
    alert = {
        "status": status,
        "labels": labels,
        "annotations": annotations or {},
        "startsAt": starts,
        "endsAt": datetime.now(UTC).isoformat() if status == "resolved" else "0001-01-01T00:00:00Z",
        "generatorURL": "contingency://cli",
        "fingerprint": fingerprint_of(labels),
    }
    return {
        "version": "4",
        "groupKey": f'{{}}:{{alertname="{labels.get("alertname", "")}"}}',
        "truncatedAlerts": 0,
        "status": status,
        "receiver": "contingency",
        "groupLabels": {"alertname": labels.get("alertname", "")},
        "commonLabels": labels,
        "commonAnnotations": annotations or {},
        "externalURL": "contingency://cli",
        "alerts": [alert],
    }


def post_alert(
    intake_url: str, token: str, payload: dict[str, Any], timeout: float = 15, wait: float = 5
) -> dict[str, Any]:
    """Post and return the answer; the intake waits up to ``wait`` s for the incident, so
    a person sees its flow run id (else the answer says "queued")."""
    resp = requests.post(
        f"{intake_url}/webhook/alertmanager?wait={wait:g}",
        json=payload,
        timeout=timeout,
        headers={"Authorization": f"Bearer {token}"},
    )
    if resp.status_code != 202:
        raise RuntimeError(f"intake answered {resp.status_code}: {resp.text[:300]}")
    return resp.json()


def intake_url(settings: Settings) -> str:
    """Where to post: ``CONTINGENCY_INTAKE_URL`` / ``intake_url``, else the intake of the
    stack recorded in the state dir, else this machine's configured intake address."""
    from contingency.runtime.processes import local_address
    from contingency.runtime.stack import recorded_stack

    if settings.intake_url:
        return settings.intake_url.rstrip("/")
    if (stack := recorded_stack(settings)) is not None:
        return stack.intake_url

    return f"http://{local_address(settings.intake_host)}:{settings.intake_port}"
