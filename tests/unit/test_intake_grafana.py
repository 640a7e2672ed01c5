import pytest
from pydantic import ValidationError

from contingency.intake.grafana import GrafanaPayload

PAYLOAD = {
    "receiver": "contingency",
    "status": "firing",
    "orgId": 1,
    "version": "1",
    "groupKey": "{}:{}",
    "alerts": [
        {
            "status": "firing",
            "labels": {"alertname": "ServiceDown", "service": "web"},
            "annotations": {"summary": "down"},
            "startsAt": "2026-11-28T10:00:00Z",
            "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "http://grafana/alerting/1",
            "fingerprint": "abc123",
        }
    ],
}


def test_grafana_normalizes() -> None:
    (alert,) = GrafanaPayload.model_validate(PAYLOAD).normalized()
    assert alert.source == "grafana"
    assert alert.fingerprint == "abc123"
    assert alert.ends_at is None
    assert alert.idempotency_key() == "abc123:2026-11-28T10:00:00+00:00"


def test_grafana_rejects_wrong_version_naming_field() -> None:
    with pytest.raises(ValidationError) as exc:
        GrafanaPayload.model_validate({**PAYLOAD, "version": "4"})
    assert exc.value.errors()[0]["loc"] == ("version",)
