"""A real Alertmanager (Debian prometheus-alertmanager) delivers to the intake."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import requests
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterTags

from contingency.lab.launcher import crash_service
from contingency.runtime.processes import free_port, http_ok, stop_pid, wait_until
from contingency.runtime.waiting import wait_for_run
from inventory.loader import load_inventory
from tests.fixtures_stack import Stack, service_pid, wait_for

CONFIG = """
route:
  receiver: contingency
  group_by: [alertname, service, test]
  group_wait: 0s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: contingency
    webhook_configs:
      - url: {url}/webhook/alertmanager
        send_resolved: true
        http_config:
          authorization:
            type: Bearer
            credentials_file: {token_file}
"""


@pytest.fixture
def alertmanager(lab_stack: Stack, tmp_path: Path) -> Iterator[str]:
    token_file = lab_stack.state_dir / "secrets" / "webhook-token"
    (tmp_path / "am.yml").write_text(CONFIG.format(url=lab_stack.intake_url, token_file=token_file))
    port = free_port()
    log = (tmp_path / "am.log").open("wb")
    proc = subprocess.Popen(
        [
            "prometheus-alertmanager",
            f"--config.file={tmp_path / 'am.yml'}",
            f"--storage.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: http_ok(f"{url}/-/ready"), "alertmanager", 30, tmp_path / "am.log")
        yield url
    finally:
        stop_pid(proc.pid, grace_s=5)
        log.close()


def _incident_for(test_id: str) -> str | None:
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(
                tags=FlowRunFilterTags(all_=["incident", "source:alertmanager"])
            )
        )
    for run in runs:
        if run.parameters.get("alert", {}).get("labels", {}).get("test") == test_id:
            return str(run.id)
    return None


def test_alertmanager_alert_runs_incident(lab_stack: Stack, alertmanager: str) -> None:
    url = load_inventory(lab_stack.inventory).service("api").health  # tcp check
    old = f"http://{url.address}:{url.port}/health"  # type: ignore[union-attr]
    old_pid = wait_for(lambda: service_pid(old), what="api up")
    crash_service(lab_stack.settings, "api")
    test_id = uuid.uuid4().hex
    alert = {
        "labels": {"alertname": "ServiceDown", "service": "api", "test": test_id},
        "annotations": {"summary": "api down"},
        "startsAt": datetime.now(UTC).isoformat(),
    }
    resp = requests.post(f"{alertmanager}/api/v2/alerts", json=[alert], timeout=10)
    assert resp.status_code == 200, resp.text
    run_id = wait_for(lambda: _incident_for(test_id), timeout_s=60, what="incident run")
    run = wait_for_run(run_id, timeout_s=120)
    assert run.state is not None and run.state.is_completed(), run.state
    assert wait_for(lambda: service_pid(old), what="api back") != old_pid
