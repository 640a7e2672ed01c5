"""The software-crash plan through the incident flow, in-process against the real Prefect
server, on a real sshd host: dry run, a service that never recovers, a pinned host key
that does not match — each a clear outcome in the report, and nothing run twice."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from contingency.lab.sshd import SshdServer, generate_client_key
from flows.incident import IncidentResult, incident
from inventory.alert import Alert
from inventory.models import Host
from inventory.settings import get_settings


def _inventory(tmp_path: Path, host: Host, marker: Path, host_key: str | None = None) -> Path:
    """A one-host inventory whose `app` service is never healthy; each restart appends
    a line to ``marker`` so the test can count them."""
    inv = {
        "hosts": {
            "box": {
                "address": host.address,
                "port": host.port,
                "user": host.user,
                "key_secret": host.key_secret,
                "host_key": host_key or host.host_key,
            }
        },
        "services": {
            "app": {
                "host": "box",
                "health": {"kind": "command", "command": "test -e /nonexistent-contingency"},
                "manager": {"kind": "commands", "restart": [f"echo restarted >> {marker}"]},
                "verify": {
                    "deadline_s": 2,
                    "first_delay_s": 0.2,
                    "backoff": 2,
                    "max_interval_s": 1,
                },
            }
        },
        "roles": {"command_center": {}},
        # the session's shared Prefect server holds every other test's remediations too:
        # no rate cap or cooldown from those here (tests/faults/test_rails.py covers them)
        "rails": {"default": {"cooldown_s": 0, "flap_count": 100, "max_runs_per_window": 100000}},
        "routing": [
            {
                "name": "down",
                "match": {"alertname": "AppDown"},
                "plan": "software_crash",
                "target": "app",
            }
        ],
    }
    path = tmp_path / "inventory.yaml"
    path.write_text(yaml.safe_dump(inv))
    return path


@pytest.fixture
def use_inventory(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    monkeypatch.setenv("CONTINGENCY_STATE_DIR", str(tmp_path / "state"))
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.mark.usefixtures("lab_stack", "use_inventory")
def test_dry_run_returns_the_plan_and_changes_nothing(
    ssh_host: Host, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    marker = tmp_path / "restarts"
    monkeypatch.setenv("CONTINGENCY_INVENTORY", str(_inventory(tmp_path, ssh_host, marker)))
    alert = Alert(fingerprint="dry", labels={"alertname": "AppDown"})
    state = incident(alert, dry_run=True, return_state=True)
    result: IncidentResult = state.result(raise_on_failure=False)
    assert state.is_completed() and result.outcome == "dry_run"
    assert result.plan is not None
    assert [(a.where, a.shown) for a in result.plan.actions] == [
        ("box", f"echo restarted >> {marker}")
    ]
    assert not marker.exists()


@pytest.mark.usefixtures("lab_stack", "use_inventory")
def test_service_that_never_recovers_is_restarted_once_and_escalated(
    ssh_host: Host, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    marker = tmp_path / "restarts"
    monkeypatch.setenv("CONTINGENCY_INVENTORY", str(_inventory(tmp_path, ssh_host, marker)))
    state = incident(Alert(fingerprint="never", labels={"alertname": "AppDown"}), return_state=True)
    assert state.is_failed() and state.name == "Escalated"
    result: IncidentResult = state.result(raise_on_failure=False)
    assert result.outcome == "not_recovered"
    assert marker.read_text().count("restarted") == 1, "must never loop"
    report = Path(result.report_path or "").read_text()
    assert "did not verify" in report and "still unhealthy" in report and "| box |" in report


@pytest.mark.usefixtures("lab_stack", "use_inventory")
def test_host_key_mismatch_fails_safe_and_runs_nothing(
    ssh_host: Host, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = SshdServer(tmp_path / "other", authorized_keys=[])
    other_key = generate_client_key(tmp_path / "k")  # any valid key line of another host
    wrong = " ".join(other_key.split()[:2])
    marker = tmp_path / "restarts"
    monkeypatch.setenv(
        "CONTINGENCY_INVENTORY", str(_inventory(tmp_path, ssh_host, marker, host_key=wrong))
    )
    state = incident(Alert(fingerprint="mitm", labels={"alertname": "AppDown"}), return_state=True)
    assert state.is_failed() and state.name == "Escalated"
    result: IncidentResult = state.result(raise_on_failure=False)
    report = Path(result.report_path or "").read_text()
    assert not marker.exists(), "nothing may run on a host whose key does not match"
    assert "box" in report and ("HostKey" in report or "host key" in report.lower())
    assert other.pid is None
