"""Safety rails under real faults (in-process incidents on the real Prefect server and a
real sshd host): kill switch, cooldown, flap breaker, blast radius, one remediation per
target at a time, empty target set."""

from __future__ import annotations

import contextvars
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prefect.client.orchestration import get_client
from prefect.states import State

from flows.incident import IncidentResult, incident
from inventory.alert import Alert
from inventory.models import Host, Inventory, PlanName
from inventory.settings import get_settings
from remediations import rails
from remediations.plan import Plan
from tests.fixtures_stack import wait_for


def _inventory(
    tmp_path: Path, host: Host, marker: Path, rails_policy: dict[str, Any], approval: bool = False
) -> Path:
    app = f"app-{marker.name[-6:]}"  # a target of its own: the rails' history is shared
    """`app` is unhealthy until restarted (the restart creates ``marker.ok``); each
    restart appends a line to ``marker``."""
    inv = {
        "hosts": {
            "box": {
                "address": host.address,
                "port": host.port,
                "user": host.user,
                "key_secret": host.key_secret,
                "host_key": host.host_key,
                "labels": {"group": "g"},
            },
            "twin": {
                "address": "127.0.0.9",
                "user": host.user,
                "key_secret": "x",
                "labels": {"group": "g"},
            },
        },
        "services": {
            app: {
                "host": "box",
                "health": {"kind": "command", "command": f"test -e {marker}.ok"},
                "manager": {
                    "kind": "commands",
                    "restart": [f"echo restarted >> {marker} && touch {marker}.ok"],
                },
                "verify": {"deadline_s": 3, "first_delay_s": 0.1},
                "requires_approval": approval,
            }
        },
        "roles": {"command_center": {}},
        "people": {"ann": {"roles": ["command_center"]}},
        "routing": [
            {
                "name": "down",
                "match": {"alertname": "AppDown"},
                "plan": "software_crash",
                "target": app,
            }
        ],
        "rails": {"default": rails_policy},
    }
    path = tmp_path / "inventory.yaml"
    path.write_text(yaml.safe_dump(inv))
    return path


@pytest.fixture
def estate(
    lab_stack: Any, ssh_host: Host, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Any]:
    marker = tmp_path / f"restarts-{uuid.uuid4().hex[:6]}"
    monkeypatch.setenv("CONTINGENCY_STATE_DIR", str(tmp_path / "state"))

    def use(policy: dict[str, Any], approval: bool = False) -> Path:
        path = _inventory(tmp_path, ssh_host, marker, policy, approval)
        monkeypatch.setenv("CONTINGENCY_INVENTORY", str(path))
        get_settings.cache_clear()
        return marker

    yield use
    get_settings.cache_clear()
    rails.thaw()


LOOSE = {"cooldown_s": 0, "flap_count": 100, "max_group_percent": 100}


def _fire(fp: str | None = None) -> tuple[State, IncidentResult]:
    state = incident(
        Alert(fingerprint=fp or uuid.uuid4().hex[:12], labels={"alertname": "AppDown"}),
        return_state=True,
    )
    return state, state.result(raise_on_failure=False)


def _restarts(marker: Path) -> int:
    return marker.read_text().count("restarted") if marker.exists() else 0


def _break(marker: Path) -> None:
    Path(f"{marker}.ok").unlink(missing_ok=True)


def test_kill_switch_plans_and_notifies_but_runs_nothing(estate: Any) -> None:
    marker = estate(LOOSE)
    rails.freeze("tester", "change freeze")
    state, result = _fire()
    assert state.name == "Escalated" and result.outcome == "frozen"
    assert _restarts(marker) == 0
    report = Path(result.report_path or "").read_text()
    assert "change freeze" in report and "echo restarted" in report  # the plan is shown
    rails.thaw()
    state, result = _fire()
    assert result.outcome == "recovered" and _restarts(marker) == 1


def test_cooldown_stops_a_second_remediation(estate: Any) -> None:
    marker = estate({**LOOSE, "cooldown_s": 600})
    _, first = _fire()
    assert first.outcome == "recovered"
    _break(marker)
    state, second = _fire()
    assert second.outcome == "cooldown" and state.name == "Escalated"
    assert _restarts(marker) == 1


def test_flap_breaker_pages_a_human(estate: Any) -> None:
    marker = estate({**LOOSE, "flap_count": 2, "flap_window_s": 600})
    for _ in range(2):
        _break(marker)
        assert _fire()[1].outcome == "recovered"
    _break(marker)
    state, result = _fire()
    assert result.outcome == "flapping" and state.name == "Escalated"
    assert _restarts(marker) == 2
    assert "flap breaker" in Path(result.report_path or "").read_text()


def test_group_percentage_cap_aborts_before_anything_runs(estate: Any) -> None:
    marker = estate({**LOOSE, "max_group_percent": 40})  # 1 of 2 hosts in group g = 50%
    state, result = _fire()
    assert result.outcome == "blast_radius" and state.name == "Escalated"
    assert _restarts(marker) == 0


def test_empty_or_over_broad_target_sets_abort() -> None:
    inv = Inventory()
    empty = Plan(plan=PlanName.software_crash, target="x")
    assert "empty target set" in (rails.blast_radius(empty, inv, 5, 50) or "")
    from remediations.plan import SshAction

    broad = Plan(
        plan=PlanName.software_crash,
        target="x",
        actions=[SshAction(host=f"h{i}", command="true") for i in range(6)],
    )
    assert "6 hosts" in (rails.blast_radius(broad, inv, 5, 50) or "")


def test_second_alert_for_a_target_joins_instead_of_running_in_parallel(estate: Any) -> None:
    marker = estate(LOOSE, approval=True)
    first: dict[str, Any] = {}
    ctx = contextvars.copy_context()

    def run_first() -> None:
        first["state"], first["result"] = ctx.run(_fire, "first-" + uuid.uuid4().hex[:6])

    thread = threading.Thread(target=run_first, daemon=True)
    thread.start()

    def paused_run() -> str | None:
        with get_client(sync_client=True) as client:
            runs = client.read_flow_runs()
        for r in runs:
            if r.state and r.state.is_paused() and r.name.startswith("AppDown"):
                return str(r.id)
        return None

    run_id = wait_for(paused_run, timeout_s=60, what="first incident at its gate")
    _, second = _fire()
    assert second.outcome == "joined" and _restarts(marker) == 0
    with get_client(sync_client=True) as client:  # end the first: the nonce-less
        client.set_flow_run_state(
            uuid.UUID(run_id),
            state=__import__(  # cancel path
                "prefect.states", fromlist=["Cancelled"]
            ).Cancelled(),
            force=True,
        )
    thread.join(30)
    time.sleep(0.5)
    assert _restarts(marker) == 0
