"""In-process smoke test of the hardened intake with a stand-in starter (no Prefect here;
the real-parts tests are in tests/integration/test_intake_hardening.py)."""

import hashlib
import hmac
import json
import time
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from contingency.intake.app import create_app
from contingency.intake.schemas import IncidentRef
from inventory.alert import Alert
from inventory.settings import Settings


class FakeStarter:
    def __init__(self) -> None:
        self.seen: set[str] = set()

    async def warm_up(self) -> None: ...

    async def close(self) -> None: ...

    async def open_causes(self) -> dict[object, object]:
        return {}

    async def ended(self, run_ids: list[str]) -> dict[str, object]:
        return {}

    async def record_absorbed(self, run_id: str, alerts: list[Alert]) -> None: ...

    async def start(self, alert: Alert, join_open: bool = False, **_: object) -> IncidentRef:
        """Like the real starter: an undated alert (``join_open``) joins its fingerprint's
        incident, so a re-send in the next minute is still a duplicate."""
        key = alert.fingerprint if join_open else alert.idempotency_key()
        dup = key in self.seen
        self.seen.add(key)
        return IncidentRef(
            fingerprint=alert.fingerprint, status=alert.status, flow_run_id="x", deduplicated=dup
        )


OPEN: list[TestClient] = []


@pytest.fixture(autouse=True)
def _close_clients() -> Iterator[None]:
    yield
    while OPEN:
        OPEN.pop().__exit__(None, None, None)


def _client(tmp_path, **kw) -> TestClient:
    """Entered (one event loop for the app's lifespan: the dispatcher runs in it)."""
    s = Settings(state_dir=tmp_path, webhook_token=SecretStr("tok"), **kw)
    client = TestClient(create_app(s, FakeStarter()))  # type: ignore[arg-type]
    OPEN.append(client.__enter__())
    return client


GENERIC = json.dumps({"alerts": [{"labels": {"alertname": "ServiceDown"}}]}).encode()


def test_generic_hmac_bearer_and_replay(tmp_path) -> None:
    c = _client(tmp_path, generic_hmac_secrets=SecretStr("old,new"))
    ts = str(int(time.time()))
    sig = hmac.new(b"old", ts.encode() + b"." + GENERIC, hashlib.sha256).hexdigest()
    h = {"content-type": "application/json", "x-contingency-timestamp": ts}
    assert (
        c.post(
            "/webhook/generic?wait=5",
            content=GENERIC,
            headers={**h, "x-contingency-signature": "sha256=" + sig},
        ).status_code
        == 202
    )
    replay = c.post(
        "/webhook/generic",
        content=GENERIC,
        headers={**h, "x-contingency-signature": "sha256=" + sig},
    )
    assert replay.status_code == 401
    bad = c.post(
        "/webhook/generic", content=GENERIC, headers={**h, "x-contingency-signature": "sha256=00"}
    )
    assert bad.status_code == 401
    ok = c.post("/webhook/generic?wait=5", content=GENERIC, headers={"authorization": "Bearer tok"})
    assert ok.status_code == 202 and ok.json()["incidents"][0]["deduplicated"], ok.text
    text = c.get("/metrics").text
    assert (
        'contingency_alerts_rejected_total{endpoint="/webhook/generic",reason="replay"} 1.0' in text
    )
    assert 'contingency_alerts_deduplicated_total{source="generic"} 1.0' in text
    # stored → dispatched: both accepted posts, once each (rows are written after the answer)
    deadline = time.monotonic() + 10
    while "contingency_alert_dispatch_seconds_count 2.0" not in text:
        assert time.monotonic() < deadline, [
            line for line in text.splitlines() if "dispatch_seconds_count" in line
        ]
        time.sleep(0.1)
        text = c.get("/metrics").text
    assert "contingency_alert_dispatch_seconds_count 2.0" in c.get("/metrics").text


def test_grafana_limits(tmp_path) -> None:
    c = _client(
        tmp_path,
        grafana_hmac_secrets=SecretStr("g1"),
        intake_rate_burst=2,  # a bad signature spends the unauthenticated budget, not this
        intake_rate_per_second=0.1,
    )
    body = json.dumps(
        {
            "version": "1",
            "status": "firing",
            "alerts": [
                {
                    "status": "firing",
                    "labels": {"alertname": "A"},
                    "startsAt": "2026-11-28T10:00:00Z",
                }
            ],
        }
    ).encode()
    ts = str(int(time.time()))
    sig = hmac.new(b"g1", ts.encode() + b":" + body, hashlib.sha256).hexdigest()
    h = {
        "content-type": "application/json",
        "x-grafana-alerting-signature": sig,
        "x-grafana-alerting-signature-timestamp": ts,
    }
    assert c.post("/webhook/grafana", content=body, headers=h).status_code == 202
    assert (
        c.post(
            "/webhook/grafana", content=body, headers={**h, "x-grafana-alerting-signature": "ab"}
        ).status_code
        == 401
    )
    assert (
        c.post(
            "/webhook/grafana", content=body, headers={**h, "content-type": "text/plain"}
        ).status_code
        == 415
    )
    r = c.post("/webhook/grafana", content=body, headers=h)
    assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1


def test_oversized_and_422(tmp_path) -> None:
    c = _client(tmp_path)
    auth = {"authorization": "Bearer tok", "content-type": "application/json"}
    big = b"{" + b" " * (256 * 1024) + b"}"
    assert c.post("/webhook/generic", content=big, headers=auth).status_code == 413
    r = c.post("/webhook/generic", content=b'{"alerts": [{"labels": {}}]}', headers=auth)
    assert r.status_code == 422 and "alerts.0.labels" in r.text


def test_token_is_checked_before_the_rate_limit(tmp_path) -> None:
    """A flood of bad tokens spends its own small budget (401, then 429), never the
    authenticated one: the sender with the token from the same address is not limited."""
    c = _client(
        tmp_path,
        intake_rate_burst=3,
        intake_rate_per_second=0.01,
        intake_unauth_burst=4,
        intake_unauth_rate_per_second=0.01,
    )
    bad = {"authorization": "Bearer nope", "content-type": "application/json"}
    flood = [c.post("/webhook/generic", content=GENERIC, headers=bad) for _ in range(10)]
    assert [r.status_code for r in flood] == [401] * 4 + [429] * 6
    assert all(r.headers["connection"] == "close" for r in flood)
    good = {"authorization": "Bearer tok", "content-type": "application/json"}
    assert [
        c.post("/webhook/generic", content=GENERIC, headers=good).status_code for _ in range(4)
    ] == [202, 202, 202, 429]
    text = c.get("/metrics").text
    assert 'endpoint="/webhook/generic",reason="unauthenticated_rate_limited"} 6.0' in text
    assert 'endpoint="/webhook/generic",reason="auth"} 4.0' in text
    assert 'endpoint="/webhook/generic",reason="rate_limited"} 1.0' in text


def test_missing_or_stale_signature_headers_are_401(tmp_path) -> None:
    """Checked before the body is read (tests/faults/test_intake_attacks.py sends none)."""
    c = _client(tmp_path, grafana_hmac_secrets=SecretStr("g1"))
    json_ = {"content-type": "application/json"}
    r = c.post("/webhook/grafana", content=b"{}", headers=json_)
    assert r.status_code == 401 and "X-Grafana-Alerting-Signature" in r.text
    stale = {"x-grafana-alerting-signature": "ab", "x-grafana-alerting-signature-timestamp": "1"}
    r = c.post("/webhook/grafana", content=b"{}", headers={**json_, **stale})
    assert r.status_code == 401 and "timestamp" in r.text
