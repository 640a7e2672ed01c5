"""Fault: the target host's sshd is killed (kill -9) while a remediation command runs.

The command was sent and did run (it leaves a marker file), but its exit status never
comes back. The result must say so — outcome unknown, exit status missing, the output
received so far — and never "No command was run."; the software-crash plan must not
restart again blindly but re-probe: healthy → recovered with a note, else escalate.
Real sshd (tests.fixtures_ssh), real processes killed by pid; nothing is mocked.
"""

from __future__ import annotations

import getpass
import random
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from prefect import flow

from contingency.lab.sshd import SshdServer
from flows.incident import IncidentResult, incident
from inventory.alert import Alert
from inventory.loader import load_inventory
from inventory.models import Host, Inventory, PlanName, RailsPolicy
from inventory.routing import RouteDecision
from inventory.settings import get_settings
from remediations import executor
from remediations.context import IncidentContext
from remediations.plan import Plan, SshAction
from tasks.report.render import OUTCOME_UNKNOWN, Timeline, render_report
from tasks.ssh.models import LOST_MID_COMMAND, CommandResult
from tasks.ssh.run import close_all, get_connection, run_ssh
from tests.fixtures_ssh import ClientKey, kill_processes_mentioning, kill_sshd_sessions

pytestmark = pytest.mark.integration

RETURN_WITHIN_S = 10.0
"""The command sleeps 20 s: returning well before that proves we did not wait for it."""


class SshdKiller:
    """Kills ``sshd``'s per-connection processes once ``marker`` exists (the command has
    run its first part) and its output had time to reach the client."""

    def __init__(self, sshd: SshdServer, marker: Path) -> None:
        self.sshd, self.marker = sshd, marker
        self.killed: list[int] = []
        self.killed_at: float | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> SshdKiller:
        self._thread.start()
        return self

    def _run(self) -> None:
        deadline = time.monotonic() + 60
        while not self.marker.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.5)  # let the output written before the marker reach the client
        self.killed = kill_sshd_sessions(self.sshd)
        self.killed_at = time.monotonic()

    def join(self) -> None:
        self._thread.join(timeout=70)


@pytest.fixture
def sleeper() -> Iterator[str]:
    """A unique ``sleep`` argument; its orphaned processes are killed afterwards."""
    arg = f"20.{random.randrange(10**8, 10**9)}"
    yield arg
    kill_processes_mentioning(arg)


def _context(tmp_path: Path, host: Host) -> IncidentContext:
    inv_path = _inventory(tmp_path, host, restart="true", healthy=tmp_path / "never")
    return IncidentContext(
        alert=Alert(fingerprint="sshd-killed", labels={"alertname": "AppDown"}),
        inv=load_inventory(inv_path),
        decision=RouteDecision(routed=True, reason="test", target="app", target_kind="service"),
        approve=lambda plan: pytest.fail("no gate in this test"),
        timeline=Timeline(),
    )


@pytest.mark.usefixtures("lab_stack")
def test_run_ssh_with_sshd_killed_mid_command_reports_outcome_unknown(
    ssh_host: Host, sshd: SshdServer, tmp_path: Path, sleeper: str
) -> None:
    token = uuid.uuid4().hex
    marker = Path(f"/tmp/contingency-sshd-killed-{token}")
    command = f"echo before-{token}; echo warn-{token} >&2; touch {marker}; sleep {sleeper}"

    @flow
    def restart() -> CommandResult:
        return run_ssh(ssh_host, command, timeout=30)

    killer = SshdKiller(sshd, marker).start()
    started = time.monotonic()
    try:
        result = restart()
        returned = time.monotonic()
        took = returned - started
        killer.join()

        assert killer.killed, "no per-connection sshd process was found to kill"
        assert marker.exists(), "the command did run on the host"
        assert took < RETURN_WITHIN_S, f"run_ssh waited {took:.1f}s for a dead connection"
        assert killer.killed_at is not None and returned - killer.killed_at < 5, "not prompt"
        assert result.outcome == "unknown" and not result.ok
        assert result.exit_code is None and result.connection_lost and not result.timed_out
        assert LOST_MID_COMMAND in result.message
        assert result.command == command and result.host == "test-sshd"
        assert result.stdout_tail == f"before-{token}\n"
        assert result.stderr_tail == f"warn-{token}\n"
        assert 0.5 <= result.duration_s < RETURN_WITHIN_S

        ctx = _context(tmp_path, ssh_host)
        ctx.record([result])
        report = render_report("Incident AppDown", {}, ctx.timeline, ctx.commands)
        assert "No command was run." not in report
        assert OUTCOME_UNKNOWN in report and "outcome unknown" in report
        assert "exit status missing" in report and "| missing |" in report
        assert f"before-{token}" in report and f"warn-{token}" in report
        assert str(marker) in report  # the command itself is listed
        assert "connection lost mid-command" in report
        # sshd's listener survived: the next connection works (re-probe is possible)
        assert get_connection(ssh_host).run("true", timeout=5).ok
    finally:
        marker.unlink(missing_ok=True)


# --- the software-crash plan inside an incident ------------------------------------


def _inventory(tmp_path: Path, host: Host, restart: str, healthy: Path) -> Path:
    """A one-host inventory whose `app` is healthy once ``healthy`` exists."""
    inv = {
        "hosts": {
            "box": {
                "address": host.address,
                "port": host.port,
                "user": host.user,
                "key_secret": host.key_secret,
                "host_key": host.host_key,
            }
        },
        "services": {
            "app": {
                "host": "box",
                "health": {"kind": "command", "command": f"test -e {healthy}"},
                "manager": {"kind": "commands", "restart": [restart, f"touch {healthy}.2nd"]},
                "verify": {
                    "deadline_s": 2,
                    "first_delay_s": 0.2,
                    "backoff": 2,
                    "max_interval_s": 1,
                },
            }
        },
        "roles": {"command_center": {}},
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


def _incident_with_sshd_killed(
    tmp_path: Path,
    ssh_host: Host,
    sshd: SshdServer,
    sleeper: str,
    monkeypatch: pytest.MonkeyPatch,
    restart_heals: bool,
) -> tuple[str, str, str, float]:
    token = uuid.uuid4().hex
    marker = tmp_path / f"restarted-{token}"
    healthy = tmp_path / f"healthy-{token}"
    heal = f"touch {healthy}; " if restart_heals else ""
    restart = f"echo restarting-{token}; echo restarted >> {marker}; {heal}sleep {sleeper}"
    monkeypatch.setenv(
        "CONTINGENCY_INVENTORY", str(_inventory(tmp_path, ssh_host, restart, healthy))
    )
    killer = SshdKiller(sshd, marker).start()
    started = time.monotonic()
    state = incident(Alert(fingerprint=token, labels={"alertname": "AppDown"}), return_state=True)
    took = time.monotonic() - started
    killer.join()
    assert killer.killed, "no per-connection sshd process was found to kill"
    assert marker.read_text().count("restarted") == 1, "the restart ran exactly once"
    assert not Path(f"{healthy}.2nd").exists(), "no step may run after an unknown outcome"
    result: IncidentResult = state.result(raise_on_failure=False)
    report = Path(result.report_path or "").read_text()
    assert "No command was run." not in report
    assert OUTCOME_UNKNOWN in report and "| missing |" in report
    assert f"restarting-{token}" in report, "the output received before the kill"
    return result.outcome, report, state.name or "", took


@pytest.mark.usefixtures("lab_stack", "use_inventory")
def test_restart_with_sshd_killed_reprobes_and_recovers_when_the_service_answers(
    ssh_host: Host,
    sshd: SshdServer,
    tmp_path: Path,
    sleeper: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    outcome, report, state_name, took = _incident_with_sshd_killed(
        tmp_path, ssh_host, sshd, sleeper, monkeypatch, restart_heals=True
    )
    assert outcome == "recovered" and state_name != "Escalated"
    assert "outcome unknown" in report and "the check passes" in report
    assert "not acting again" in report
    assert took < 20, f"the incident waited {took:.1f}s for the dead connection"


@pytest.mark.usefixtures("lab_stack", "use_inventory")
def test_restart_with_sshd_killed_escalates_when_the_service_stays_down(
    ssh_host: Host,
    sshd: SshdServer,
    tmp_path: Path,
    sleeper: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    outcome, report, state_name, took = _incident_with_sshd_killed(
        tmp_path, ssh_host, sshd, sleeper, monkeypatch, restart_heals=False
    )
    assert outcome == "outcome_unknown" and state_name == "Escalated"
    assert "the check still fails" in report and "Not acting again blindly" in report
    assert took < 20, f"the incident waited {took:.1f}s for the dead connection"


@pytest.mark.usefixtures("lab_stack", "ssh_home")
def test_a_command_that_raises_after_it_was_sent_is_still_recorded(
    tmp_path: Path, ssh_client_key: ClientKey
) -> None:
    """The apply path records a sent command even when its task ends in an exception
    (here: the host has no timeout(1) on PATH, so the wrapper exits 127)."""
    empty = tmp_path / "empty-path"
    empty.mkdir()
    with SshdServer(
        tmp_path / "s", authorized_keys=[ssh_client_key.public], env={"PATH": str(empty)}
    ) as server:
        host = Host(
            name="no-coreutils",
            address=server.address,
            port=server.port,
            user=getpass.getuser(),
            key_secret=ssh_client_key.secret_name,
            host_key=server.host_key_line,
        )
        # the session's server holds other tests' remediations of "app": no cooldown here
        free = RailsPolicy(cooldown_s=0, flap_count=100, max_runs_per_window=100000)
        inv = Inventory(hosts={"box": host}, rails={"default": free})
        plan = Plan(
            plan=PlanName.software_crash,
            target="app",
            actions=[
                SshAction(host="box", command="echo first"),
                SshAction(host="box", command="x"),
            ],
        )
        ctx = _context(tmp_path, host)
        ctx.inv = inv

        @flow
        def restart() -> object:
            return executor.execute(ctx, plan)

        try:
            verdict = restart()
        finally:
            close_all()
    assert getattr(verdict, "outcome", None) == "failed" and not getattr(verdict, "ok", True)
    assert "timeout(1) from coreutils is missing" in getattr(verdict, "message", "")
    assert [c["command"] for c in ctx.commands] == ["echo first"], "recorded once, then stopped"
    assert ctx.commands[0]["exit_code"] == 127 and ctx.steps[0].outcome == "failed"
    assert "timeout" in str(ctx.commands[0]["stderr_tail"])
    report = render_report("t", {}, ctx.timeline, ctx.commands)
    assert "No command was run." not in report and "| 127 |" in report
