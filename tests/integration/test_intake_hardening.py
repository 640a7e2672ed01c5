"""The hardened intake as real uvicorn processes against the lab stack's Prefect server."""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import os
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import requests

from contingency.cli.components import intake_argv
from contingency.runtime.processes import StartupError, http_ok, wait_until
from tests.fixtures_stack import ACK_WAIT, Stack

GRAFANA_SECRETS = "grafana-old,grafana-new"
GENERIC_SECRETS = "generic-old,generic-new"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start_intake(stack: Stack, **extra: str) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    env = {
        **os.environ,
        "PREFECT_API_URL": stack.api_url,
        "PREFECT_API_AUTH_STRING": stack.auth,
        "CONTINGENCY_STATE_DIR": str(stack.state_dir),
        "CONTINGENCY_INVENTORY": str(stack.inventory),
        "CONTINGENCY_WEBHOOK_TOKEN": stack.token,
        "CONTINGENCY_GRAFANA_HMAC_SECRETS": GRAFANA_SECRETS,
        "CONTINGENCY_GENERIC_HMAC_SECRETS": GENERIC_SECRETS,
        "CONTINGENCY_INTAKE_ACK_WAIT_S": ACK_WAIT,  # the answers carry the incidents
        # a replica of its own: its own outbox (what two machines' intakes have)
        "CONTINGENCY_INTAKE_OUTBOX": str(stack.state_dir / "intake" / f"replica-{port}.sqlite"),
        **extra,
    }
    # the argv `contingency intake` runs (the guarded protocol included)
    proc = subprocess.Popen([*intake_argv("127.0.0.1", port), "--log-level", "warning"], env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: http_ok(f"{url}/healthz"), "intake", 60)
    except StartupError:
        proc.terminate()
        raise
    return proc, url


@pytest.fixture
def intake(lab_stack: Stack) -> Iterator[str]:
    proc, url = _start_intake(
        lab_stack, CONTINGENCY_INTAKE_RATE_BURST="5", CONTINGENCY_INTAKE_RATE_PER_SECOND="0.5"
    )
    try:
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


def _grafana_body() -> bytes:
    return json.dumps(
        {
            "version": "1",
            "status": "firing",
            "receiver": "contingency",
            "alerts": [
                {
                    "status": "firing",
                    "startsAt": datetime.now(UTC).isoformat(),
                    "labels": {
                        "alertname": "ServiceDown",
                        "service": "api",
                        "test": uuid.uuid4().hex,
                    },
                }
            ],
        }
    ).encode()


def _sign(secret: str, msg: bytes) -> str:
    return hmac.new(secret.encode(), msg, hashlib.sha256).hexdigest()


def test_grafana_signature_valid_invalid_stale_rotated(intake: str) -> None:
    body = _grafana_body()
    ts = str(int(time.time()))
    base = {"Content-Type": "application/json", "X-Grafana-Alerting-Signature-Timestamp": ts}

    def post(sig: str, headers: dict[str, str] = base) -> requests.Response:
        return requests.post(
            f"{intake}/webhook/grafana",
            data=body,
            timeout=30,
            headers={**headers, "X-Grafana-Alerting-Signature": sig},
        )

    assert post(_sign("grafana-new", ts.encode() + b":" + body)).status_code == 202
    assert post(_sign("grafana-old", ts.encode() + b":" + body)).status_code == 202  # rotation
    assert post(_sign("wrong", ts.encode() + b":" + body)).status_code == 401
    stale = str(int(time.time()) - 400)
    r = post(
        _sign("grafana-new", stale.encode() + b":" + body),
        {**base, "X-Grafana-Alerting-Signature-Timestamp": stale},
    )
    assert r.status_code == 401 and "timestamp" in r.text
    metrics = requests.get(f"{intake}/metrics", timeout=10).text
    assert 'reason="signature"} 2.0' in metrics
    assert 'contingency_alerts_deduplicated_total{source="grafana"} 1.0' in metrics


def test_oversized_without_content_length_and_rate_limit(intake: str, lab_stack: Stack) -> None:
    host, port = intake.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    conn.putrequest("POST", "/webhook/generic")
    conn.putheader("Authorization", f"Bearer {lab_stack.token}")
    conn.putheader("Content-Type", "application/json")
    conn.putheader("Transfer-Encoding", "chunked")
    conn.endheaders()
    chunk = b" " * 65536
    try:
        for _ in range(6):
            conn.send(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        conn.send(b"0\r\n\r\n")
    except (BrokenPipeError, ConnectionResetError):
        pass
    status = conn.getresponse().status
    assert status == 413  # no Content-Length: refused while counting the streamed bytes
    auth = {"Authorization": f"Bearer {lab_stack.token}"}  # the limit counts authenticated
    codes = [  # requests (a bad token spends only the address's unauthenticated budget)
        requests.post(f"{intake}/webhook/generic", json={}, headers=auth, timeout=10).status_code
        for _ in range(8)
    ]
    assert 429 in codes and set(codes) <= {422, 429}
    r = requests.post(f"{intake}/webhook/generic", json={}, headers=auth, timeout=10)
    assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1


def test_two_replicas_start_one_incident(lab_stack: Stack) -> None:
    a, url_a = _start_intake(lab_stack)
    b, url_b = _start_intake(lab_stack)
    try:
        payload = {
            "alerts": [
                {
                    "labels": {
                        "alertname": "ServiceDown",
                        "service": "api",
                        "test": uuid.uuid4().hex,
                    },
                    "starts_at": datetime.now(UTC).isoformat(),
                }
            ]
        }
        hdr = {"Authorization": f"Bearer {lab_stack.token}"}
        ra = requests.post(f"{url_a}/webhook/generic", json=payload, headers=hdr, timeout=30)
        rb = requests.post(f"{url_b}/webhook/generic", json=payload, headers=hdr, timeout=30)
        ia, ib = ra.json()["incidents"][0], rb.json()["incidents"][0]
        assert ia["flow_run_id"] and ia["flow_run_id"] == ib["flow_run_id"]
        assert [ia["deduplicated"], ib["deduplicated"]] == [False, True]
    finally:
        for p in (a, b):
            p.terminate()
            p.wait(10)
