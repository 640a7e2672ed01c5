"""Hostile input at the real intake of the lab stack (`contingency up --lab`): shell
injection in every label and annotation, oversized / malformed / mistyped bodies, wrong
content type, bad bearer tokens and HMAC signatures — and a rotated generic HMAC secret."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import http.client
import json
import re
import sqlite3
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from contingency.cli.alerts import alertmanager_payload
from contingency.intake.schemas import fingerprint_of
from contingency.lab.launcher import crash_service
from contingency.runtime.stack import restart
from contingency.runtime.waiting import wait_for_run
from inventory.loader import load_inventory
from tests.fixtures_stack import ACK_WAIT, Stack, service_pid, wait_for


def injections(marker: str) -> list[str]:
    """Strings a shell would run, each creating ``marker-<i>`` if it ever reached one."""
    m = [f"{marker}-{i}" for i in range(12)]
    return [
        f"$(touch {m[0]})",
        f"; touch {m[1]}",
        f"`touch {m[2]}`",
        f"| touch {m[3]}",
        f"\ntouch {m[4]}\n",
        f"&& touch {m[5]} #",
        f"' ; touch {m[6]} ; '",
        f'" ; touch {m[7]} ; "',
        f"../../../../..{m[8]}",
        f"{{{{ touch {m[9]} }}}} %s%n ${{IFS}}",
        "A" * 20_000 + f"; touch {m[10]}",
        f"web\x00; touch {m[11]}",
    ]


@pytest.fixture
def marker() -> Iterator[str]:
    base = f"/tmp/pwned-{uuid.uuid4().hex[:12]}"
    yield base
    for path in Path("/tmp").glob(Path(base).name + "*"):
        path.unlink()


def created(marker: str) -> list[str]:
    return sorted(str(p) for p in Path("/tmp").glob(Path(marker).name + "*"))


def inventory_commands(stack: Stack) -> set[str]:
    """Every string in the lab inventory: a command that ran must be one of them."""
    found: set[str] = set()

    def walk(value: Any) -> None:
        if isinstance(value, str):
            found.add(value)
        elif isinstance(value, dict):
            for v in value.values():
                walk(v)
        elif isinstance(value, list | tuple):
            for v in value:
                walk(v)

    walk(load_inventory(stack.inventory).model_dump(mode="json"))
    return found


def report_commands(report: str) -> list[str]:
    """The command column of the report's "## Commands" table."""
    section = report.split("## Commands", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| ") and "`" in line]
    return [re.search(r"`(.*)`", row).group(1).replace("\\|", "|") for row in rows]  # type: ignore[union-attr]


def metric(stack: Stack, sample: str) -> float:
    text = requests.get(f"{stack.intake_url}/metrics", timeout=10).text
    for line in text.splitlines():
        if line.startswith(sample + " "):
            return float(line.split()[-1])
    return 0.0


def _post_generic(stack: Stack, alert: dict[str, Any]) -> dict[str, Any]:
    resp = stack.post("/webhook/generic", {"alerts": [alert]})
    assert resp.status_code == 202, resp.text[:500]
    ref = resp.json()["incidents"][0]
    assert ref["flow_run_id"] and not ref["deduplicated"]
    return ref


def test_injection_in_every_label_and_annotation_of_a_routed_alert(
    lab_stack: Stack, marker: str
) -> None:
    bad = injections(marker)
    labels = {"alertname": "ServiceDown", "service": "web"}  # routes to software_crash on web
    labels |= {f"inj{i}": value for i, value in enumerate(bad)}
    labels[f"$(touch {marker}-key)"] = "key"  # label names too
    annotations = {f"note{i}": value for i, value in enumerate(bad)}
    annotations |= {"summary": bad[0], "description": bad[1], "runbook_url": bad[3]}
    url = load_inventory(lab_stack.inventory).service("web").health.url  # type: ignore[union-attr]
    crash_service(lab_stack.settings, "web")
    before = metric(lab_stack, 'contingency_incidents_started_total{plan="software_crash"}')

    ref = _post_generic(
        lab_stack,
        {"labels": labels, "annotations": annotations, "source_url": f"http://x/{bad[0]}"},
    )
    run = wait_for_run(ref["flow_run_id"], timeout_s=120)
    assert run.state is not None and run.state.is_completed(), run.state
    assert wait_for(lambda: service_pid(url), what="web restarted")
    report = (lab_stack.state_dir / "reports" / f"incident-{ref['flow_run_id']}.md").read_text()
    ran = report_commands(report)
    assert ran, "the crashed service was restarted with the inventory's command"
    assert set(ran) <= inventory_commands(lab_stack), ran
    assert "labctl restart web" in ran
    assert created(marker) == []
    after = metric(lab_stack, 'contingency_incidents_started_total{plan="software_crash"}')
    assert after == before + 1


def test_injection_in_every_field_of_an_unroutable_alert(lab_stack: Stack, marker: str) -> None:
    bad = injections(marker)
    labels = {"alertname": bad[0], "service": bad[1], "host": bad[8], "dataset": bad[2]}
    labels |= {f"inj{i}": value for i, value in enumerate(bad)}
    before = metric(lab_stack, 'contingency_incidents_started_total{plan="unroutable"}')
    ref = _post_generic(
        lab_stack,
        {
            "labels": labels,
            "annotations": {f"a{i}": v for i, v in enumerate(bad)},
            "fingerprint": f"$(touch {marker}-fp)"[:128],
        },
    )
    run = wait_for_run(ref["flow_run_id"], timeout_s=120)
    assert run.state is not None and run.state.is_failed() and run.state.name == "Escalated"
    report = (lab_stack.state_dir / "reports" / f"incident-{ref['flow_run_id']}.md").read_text()
    assert "unroutable" in report and "No command was run." in report
    assert report_commands(report) == []
    assert created(marker) == []
    after = metric(lab_stack, 'contingency_incidents_started_total{plan="unroutable"}')
    assert after == before + 1


def test_injection_through_alertmanager_labels_starts_nothing_but_inventory_commands(
    lab_stack: Stack, marker: str
) -> None:
    """The Alertmanager endpoint with the same strings (a target that is not in the
    inventory): escalated, nothing ran, no marker."""
    bad = injections(marker)
    labels = {"alertname": "ServiceDown", "service": bad[0]}
    labels |= {f"inj{i}": value for i, value in enumerate(bad[:10])}
    payload = alertmanager_payload(labels, {f"a{i}": v for i, v in enumerate(bad)})
    resp = lab_stack.post("/webhook/alertmanager", payload)
    assert resp.status_code == 202, resp.text[:300]
    run_id = resp.json()["incidents"][0]["flow_run_id"]
    run = wait_for_run(run_id, timeout_s=120)
    assert run.state is not None and run.state.name == "Escalated"
    report = (lab_stack.state_dir / "reports" / f"incident-{run_id}.md").read_text()
    assert report_commands(report) == [] and created(marker) == []


def _raw_post(stack: Stack, path: str, headers: dict[str, str], chunks: list[bytes]) -> int:
    """POST with Transfer-Encoding: chunked (no Content-Length); returns the status."""
    host, port = stack.intake_url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    conn.putrequest("POST", path)
    for k, v in headers.items():
        conn.putheader(k, v)
    conn.putheader("Transfer-Encoding", "chunked")
    conn.endheaders()
    try:
        for chunk in chunks:
            conn.send(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        conn.send(b"0\r\n\r\n")
    except (BrokenPipeError, ConnectionResetError):
        pass  # the intake may stop reading once it is over the limit
    status = conn.getresponse().status
    conn.close()
    return status


def test_oversized_body_with_and_without_content_length(lab_stack: Stack) -> None:
    auth = {"Authorization": f"Bearer {lab_stack.token}", "Content-Type": "application/json"}
    big = json.dumps({"alerts": [{"labels": {"alertname": "X", "pad": "x" * 300_000}}]})
    before = metric(
        lab_stack,
        'contingency_alerts_rejected_total{endpoint="/webhook/generic",reason="too_large"}',
    )
    r = requests.post(f"{lab_stack.intake_url}/webhook/generic", data=big, headers=auth, timeout=30)
    assert r.status_code == 413 and "262144" in r.text
    assert _raw_post(lab_stack, "/webhook/generic", auth, [b" " * 65536] * 5) == 413
    fits = [b'{"alerts": [{"labels": {"alertname": "ChunkedOk", "t": "', uuid.uuid4().hex.encode()]
    assert _raw_post(lab_stack, "/webhook/generic", auth, [*fits, b'"}}]}']) == 202
    after = metric(
        lab_stack,
        'contingency_alerts_rejected_total{endpoint="/webhook/generic",reason="too_large"}',
    )
    assert after == before + 2


AM_ALERT = {"status": "firing", "labels": {"a": "b"}, "startsAt": "2026-01-01T00:00:00Z"}
BAD_BODIES = [
    ("/webhook/generic", b"{not json", "invalid body"),
    ("/webhook/generic", b"", "invalid body"),
    ("/webhook/generic", {"alerts": "x"}, "alerts"),
    ("/webhook/generic", {"alerts": [{"labels": {"alertname": 5}}]}, "alerts.0.labels.alertname"),
    (
        "/webhook/generic",
        {"alerts": [{"labels": {"a": "b"}, "starts_at": "soon"}]},
        "alerts.0.starts_at",
    ),  # noqa: E501
    ("/webhook/generic", {"alerts": [{"labels": {"a": "b"}, "rm": "-rf"}]}, "alerts.0.rm"),
    (
        "/webhook/alertmanager",
        {"version": "4", "status": "burning", "alerts": [AM_ALERT]},
        "status",
    ),  # noqa: E501
    ("/webhook/alertmanager", {"version": 4, "status": "firing", "alerts": [AM_ALERT]}, "version"),
    (
        "/webhook/grafana",
        {"version": "1", "status": "firing", "alerts": [{**AM_ALERT, "labels": []}]},
        "alerts.0.labels",
    ),  # noqa: E501
]


@pytest.mark.parametrize(("path", "body", "field"), BAD_BODIES)
def test_malformed_and_mistyped_bodies_are_422_naming_the_field(
    lab_stack: Stack, path: str, body: bytes | dict[str, Any], field: str
) -> None:
    r = requests.post(
        f"{lab_stack.intake_url}{path}",
        data=body if isinstance(body, bytes) else json.dumps(body),
        headers={"Authorization": f"Bearer {lab_stack.token}", "Content-Type": "application/json"},
        timeout=10,
    )
    assert r.status_code == 422, r.text
    detail = r.json()["detail"]
    assert detail["error"] == "invalid body"
    assert field == "invalid body" or any(p.startswith(field + ":") for p in detail["problems"])


def test_wrong_content_type_is_415(lab_stack: Stack) -> None:
    for ctype in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data"):
        r = requests.post(
            f"{lab_stack.intake_url}/webhook/generic",
            data=b'{"alerts": [{"labels": {"alertname": "X"}}]}',
            headers={"Authorization": f"Bearer {lab_stack.token}", "Content-Type": ctype},
            timeout=10,
        )
        assert r.status_code == 415, (ctype, r.text)


@pytest.mark.parametrize("path", ["/webhook/generic", "/webhook/alertmanager", "/webhook/grafana"])
def test_bad_or_missing_bearer_token_is_401(lab_stack: Stack, path: str) -> None:
    payload = alertmanager_payload({"alertname": "ServiceDown", "service": "web"})
    for header in ({"Authorization": "Bearer wrong"}, {"Authorization": "Basic x"}, {}):
        r = requests.post(f"{lab_stack.intake_url}{path}", json=payload, headers=header, timeout=10)
        assert r.status_code == 401 and r.headers.get("WWW-Authenticate") == "Bearer"
        assert lab_stack.token not in r.text


GENERIC_SECRETS = "generic-old-secret,generic-new-secret"


def _healthy(stack: Stack) -> bool:
    return _answers(stack.intake_url)


def _answers(url: str) -> bool:
    try:
        return requests.get(f"{url}/healthz", timeout=2).ok
    except requests.ConnectionError:
        return False


@pytest.fixture
def generic_hmac(lab_stack: Stack, monkeypatch: pytest.MonkeyPatch) -> Iterator[Stack]:
    """The stack's own intake restarted with two generic HMAC secrets (rotation), the way
    `contingency up` configures it (``CONTINGENCY_GENERIC_HMAC_SECRETS`` in its
    environment); restarted without them afterwards."""

    def restart_intake() -> None:
        restart(lab_stack.settings, "intake")
        wait_for(lambda: _healthy(lab_stack), what="intake back")

    # the stack's intake answers with its incidents (ACK_WAIT); so does the restarted one
    monkeypatch.setenv("CONTINGENCY_INTAKE_ACK_WAIT_S", ACK_WAIT)
    monkeypatch.setenv("CONTINGENCY_GENERIC_HMAC_SECRETS", GENERIC_SECRETS)
    restart_intake()
    try:
        yield lab_stack
    finally:
        monkeypatch.delenv("CONTINGENCY_GENERIC_HMAC_SECRETS")
        restart_intake()


def _signed(stack: Stack, body: bytes, secret: str, ts: int | None = None) -> requests.Response:
    stamp = str(int(time.time()) if ts is None else ts)
    sig = hmac.new(secret.encode(), stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return requests.post(
        f"{stack.intake_url}/webhook/generic",
        data=body,
        headers={
            "Content-Type": "application/json",
            "X-Contingency-Timestamp": stamp,
            "X-Contingency-Signature": f"sha256={sig}",
        },
        timeout=30,
    )


def test_generic_hmac_with_rotated_secrets_against_the_stack_intake(generic_hmac: Stack) -> None:
    stack = generic_hmac

    def body() -> bytes:  # unroutable alerts: they escalate and run nothing
        labels = {"alertname": "HmacProbe", "t": uuid.uuid4().hex}
        return json.dumps({"alerts": [{"labels": labels}]}).encode()

    new, old = body(), body()
    ts = int(time.time())
    r_new, r_old = (
        _signed(stack, new, "generic-new-secret", ts=ts),
        _signed(stack, old, "generic-old-secret"),
    )
    assert (r_new.status_code, r_old.status_code) == (202, 202), (r_new.text, r_old.text)
    runs = [r.json()["incidents"][0]["flow_run_id"] for r in (r_new, r_old)]
    assert all(runs) and runs[0] != runs[1]
    # the exact same request again (same timestamp, same signature) is a replay
    assert _signed(stack, new, "generic-new-secret", ts=ts).status_code == 401
    refused = [
        _signed(stack, body(), "not-the-secret"),
        _signed(stack, body(), "generic-new-secret", ts=int(time.time()) - 400),  # stale
    ]
    tampered = body()
    good = _signed(stack, tampered, "generic-new-secret").request.headers
    refused.append(
        requests.post(
            f"{stack.intake_url}/webhook/generic",
            data=tampered.replace(b"HmacProbe", b"HmacProbX"),
            headers=dict(good),
            timeout=30,
        )
    )
    assert [r.status_code for r in refused] == [401, 401, 401]
    # a bad signature is refused even with the right bearer token
    bad_sig = requests.post(
        f"{stack.intake_url}/webhook/generic",
        data=body(),
        headers={
            "Authorization": f"Bearer {stack.token}",
            "Content-Type": "application/json",
            "X-Contingency-Timestamp": str(int(time.time())),
            "X-Contingency-Signature": "sha256=" + "0" * 64,
        },
        timeout=30,
    )
    assert bad_sig.status_code == 401
    for secret in GENERIC_SECRETS.split(","):
        assert all(secret not in r.text for r in [*refused, bad_sig])
    assert (
        metric(
            stack,
            'contingency_alerts_rejected_total{endpoint="/webhook/generic",reason="signature"}',
        )
        == 4  # wrong secret, stale, tampered body, bad signature beside a good token
    )
    assert (
        metric(
            stack, 'contingency_alerts_rejected_total{endpoint="/webhook/generic",reason="replay"}'
        )
        == 1
    )
    for run_id in runs:
        run = wait_for_run(run_id, timeout_s=120)
        assert run.state is not None and run.state.name == "Escalated"


def test_storm_of_resends_starts_one_incident_per_fingerprint(lab_stack: Stack) -> None:
    """200 posts over 5 fingerprints, 4 connections at once: exactly 5 incidents; the
    re-sends are answered by this replica's cache (no Prefect call)."""
    from concurrent.futures import ThreadPoolExecutor

    tag = uuid.uuid4().hex
    payloads = [
        alertmanager_payload({"alertname": "StormProbe", "t": tag, "n": str(i)}) for i in range(5)
    ]
    hits_before = metric(lab_stack, "contingency_alerts_dedup_cache_hits_total")
    with ThreadPoolExecutor(4) as pool:
        answers = list(
            pool.map(
                lambda k: lab_stack.post("/webhook/alertmanager", payloads[k % 5], settle=False),
                range(200),
            )
        )
    assert {a.status_code for a in answers} == {202}
    refs = [a.json()["incidents"][0] for a in answers]
    fps = {fingerprint_of(p["alerts"][0]["labels"]) for p in payloads}
    assert {r["fingerprint"] for r in refs} == fps
    # An answer may say "queued" when its alert was not dispatched within the ack wait
    # (a busy CI machine; a Prefect call retried): the alert is stored, and must still
    # end as a re-send of its fingerprint's one incident.
    queued = [r for r in refs if r["flow_run_id"] is None]
    assert all(r["note"].startswith(("queued", "not started yet")) for r in queued), queued
    run_ids = {r["flow_run_id"] for r in refs if r["flow_run_id"]}
    assert len(run_ids) == 5 and sum(not r["deduplicated"] for r in refs if r not in queued) <= 5
    assert metric(lab_stack, "contingency_alerts_dedup_cache_hits_total") - hits_before >= 100
    for run_id in run_ids:
        run = wait_for_run(run_id, timeout_s=180)
        assert run.state is not None and run.state.name == "Escalated"  # unroutable

    def settled() -> bool:  # every one of the 200 rows dispatched (none pending)
        with contextlib.closing(sqlite3.connect(lab_stack.settings.outbox_path)) as db:
            marks = ",".join("?" * len(fps))
            pending = db.execute(
                f"SELECT COUNT(*) FROM alerts WHERE state = 'pending' AND fingerprint IN ({marks})",
                sorted(fps),
            ).fetchone()[0]
        return pending == 0

    wait_for(settled, timeout_s=120, what="the stored re-sends dispatched")
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterTags

    from tasks.prefect_api import get_client

    with get_client(sync_client=True) as client:
        for fp in fps:
            mine = client.read_flow_runs(
                flow_run_filter=FlowRunFilter(tags=FlowRunFilterTags(all_=[f"fingerprint:{fp}"]))
            )
            assert len(mine) == 1, (fp, [r.id for r in mine])


def test_prefect_unreachable_the_alert_is_stored_and_started_after_a_kill_9(
    lab_stack: Stack, tmp_path: Path
) -> None:
    """A real intake whose Prefect API is a closed port still answers 202 ("queued"): the
    alert is on disk. The intake is killed (-9) with the alert undispatched; an intake
    started on the same outbox, now with the real API, starts its incident: nothing lost."""
    import os
    import signal
    import subprocess
    import sys

    from contingency.runtime.processes import alive, children, free_port
    from tasks.prefect_api import get_client

    def start(api: str) -> tuple[subprocess.Popen[bytes], str]:
        port = free_port()
        env = {
            k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "CONTINGENCY_"))
        }
        env |= {  # CONTINGENCY_API_URL: before the stack recorded in the state dir
            "CONTINGENCY_API_URL": api,
            "CONTINGENCY_API_AUTH_STRING": lab_stack.auth,
            "PREFECT_CLIENT_MAX_RETRIES": "0",
            "CONTINGENCY_WEBHOOK_TOKEN": lab_stack.token,
            "CONTINGENCY_INVENTORY": str(lab_stack.inventory),
            "CONTINGENCY_STATE_DIR": str(lab_stack.state_dir),
            "CONTINGENCY_INTAKE_OUTBOX": str(tmp_path / "outbox.sqlite"),
        }
        argv = [sys.executable, "-m", "contingency", "intake", "--port", str(port)]
        proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        url = f"http://127.0.0.1:{port}"
        wait_for(lambda: _answers(url), what="intake up")
        return proc, url

    proc, url = start(f"http://127.0.0.1:{free_port()}/api")
    labels = {"alertname": "Unrouted", "target": "nowhere", "t": uuid.uuid4().hex}
    try:
        r = requests.post(
            f"{url}/webhook/alertmanager?wait=2",
            json=alertmanager_payload(labels),
            headers={"Authorization": f"Bearer {lab_stack.token}"},
            timeout=60,
        )
        assert r.status_code == 202, r.text
        ref = r.json()["incidents"][0]
        assert ref["flow_run_id"] is None and ref["note"].startswith("queued"), ref
        assert ref["fingerprint"] == fingerprint_of(labels)
        dispatchers = children(proc.pid)
        assert len(dispatchers) == 1, dispatchers  # the intake's dispatcher process
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    # its dispatcher sees the intake's pipe close and stops too: no orphan dispatching
    wait_for(lambda: not any(alive(pid) for pid in dispatchers), what="the dispatcher gone")
    proc, url = start(lab_stack.api_url)
    try:
        tag = f"fingerprint:{fingerprint_of(labels)}"

        def runs() -> list[Any]:
            from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterTags

            with get_client(sync_client=True) as client:
                return client.read_flow_runs(
                    flow_run_filter=FlowRunFilter(tags=FlowRunFilterTags(all_=[tag]))
                )

        found = wait_for(runs, timeout_s=60, what="the stored alert's incident")
        assert len(found) == 1
        metrics = requests.get(f"{url}/metrics", timeout=30).text
        assert "contingency_intake_queue_depth 0.0" in metrics
    finally:
        proc.terminate()
        proc.wait(10)
