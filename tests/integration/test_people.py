"""The plan's people on the real stack: severity levels, the duty roster, activation by
the command center, and `contingency oncall` — what the lab inbox, the report and
/metrics show for a real incident."""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator

import pytest
import requests

from contingency.cli.alerts import alertmanager_payload
from contingency.cli.gates import decide, open_gates
from contingency.lab.inbox import person_path, read
from contingency.lab.launcher import crash_service, labctl, service_host
from contingency.runtime.waiting import wait_for_run
from tests.fixtures_stack import Stack, approval_code, cli, pointed_at, wait_for


@pytest.fixture
def api_down(lab_stack: Stack) -> Iterator[str]:
    """The lab's `api` service crashed (the plan restarts it)."""
    crash_service(lab_stack.settings, "api")
    yield "api"
    labctl(lab_stack.settings, service_host(lab_stack.settings, "api"), "start", "api")


def _cli(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    return cli(stack, *args)


def _fire(stack: Stack, **labels: str) -> str:
    payload = alertmanager_payload(
        {"alertname": "ServiceDown", "service": "api", "test": uuid.uuid4().hex, **labels}
    )
    ref = stack.post("/webhook/alertmanager", payload).json()["incidents"][0]
    assert ref["flow_run_id"], ref
    return str(ref["flow_run_id"])


def _pages(stack: Stack, run_id: str, path: str) -> list[dict]:
    inbox = stack.state_dir / "lab" / "inbox.jsonl"
    return [m for m in read(inbox, path) if run_id in str(m.get("message", ""))]


def _opened(stack: Stack, run_id: str, path: str) -> list[dict]:
    return [m for m in _pages(stack, run_id, path) if "Incident opened" in str(m.get("title"))]


def test_an_ordinary_incident_is_level_IV_and_pages_the_on_duty_person_first(
    lab_stack: Stack, api_down: str
) -> None:
    duty = {d["role"]: d for d in json.loads(_cli(lab_stack, "oncall", "--json").stdout)}
    on_duty = duty["operations"]["person"]
    off_duty = ({"wang.fang", "zhao.lei"} - {on_duty}).pop()
    assert duty["operations"]["phone"] and duty["command_center"]["person"] is None
    run_id = _fire(lab_stack)
    run = wait_for_run(run_id, timeout_s=120)
    assert run.state is not None and run.state.is_completed(), run.state
    assert "severity:IV" in run.tags
    report = (lab_stack.state_dir / "reports" / f"incident-{run_id}.md").read_text()
    assert "IV Ordinary (command center told within 120 min)" in report
    opened = wait_for(lambda: _pages(lab_stack, run_id, person_path(on_duty)), 30, "duty page")
    assert opened[0]["title"].startswith("[IV Ordinary] Incident opened")
    # operations pages its on-duty person's own channel, never the off-duty one's (who
    # hears through the role channel; wang.fang is also paged as tech support, no roster)
    assert f"| incident_opened | operations ({on_duty}) |" in report
    assert f"operations ({off_duty})" not in report
    assert _opened(lab_stack, run_id, "/ops") and not _opened(lab_stack, run_id, "/users")

    def counted() -> float:
        text = requests.get(f"{lab_stack.intake_url}/metrics", timeout=30).text
        line = next((x for x in text.splitlines() if x.startswith(
            'contingency_incidents_severity_total{severity="IV"}')), "")  # fmt: skip
        return float(line.split()[-1]) if line else 0.0

    assert wait_for(counted, 60, "the severity counter") >= 1
    with pointed_at(lab_stack):
        from contingency.cli.stats import aggregate, collect, parse_since

        stats = {s.plan: s for s in aggregate(collect(parse_since("1h")))}
    assert stats["software_crash"].by_severity.get("IV", 0) >= 1


def test_a_level_II_incident_waits_for_the_command_centers_activation(
    lab_stack: Stack, api_down: str
) -> None:
    """The restart plan has no gate of its own; level II demands one, and pages every role."""
    run_id = _fire(lab_stack, severity="II")
    wait_for(lambda: any(g.flow_run_id == run_id for g in open_gates()), 90, "activation gate")
    # every role is paged; the pages may land a moment after the gate opens
    wait_for(lambda: _opened(lab_stack, run_id, "/users"), 30, "the users' page")
    wait_for(lambda: _opened(lab_stack, run_id, "/info"), 30, "the information page")
    decide(run_id, "approve", "zhang.wei", approval_code(lab_stack, run_id), "activate")
    run = wait_for_run(run_id, timeout_s=120)
    assert run.state is not None and run.state.is_completed(), run.state
    report = (lab_stack.state_dir / "reports" / f"incident-{run_id}.md").read_text()
    assert "II Serious (the command center activates the plan;" in report
    assert "activation: severity II Serious: the command center activates the plan" in report
    assert "| zhang.wei | approve |" in report and "labctl restart api" in report


LADDER_LEVELS = """
# written by tests/integration/test_people.py for one test, then removed
severity:
  fast:
    rank: 1
    when: [{labels: {ladder_test: fast}}]
    escalation_min: [0.05, 0.05, 0.05]    # 3 s a step
  slow:
    rank: 2
    when: [{labels: {ladder_test: slow}}]
    escalation_min: [0.3, 0.3, 0.3]       # 18 s: time to acknowledge
  I: {rank: 3, when: [{min_blast_radius: 50}], activation: true}
  II: {rank: 4, when: [{labels: {severity: "II"}}], activation: true}
  III: {rank: 5, when: [{plans: [data_loss, network_outage, hardware_failure]}]}
  IV: {rank: 6}
"""


@pytest.fixture
def short_ladders(lab_stack: Stack) -> Iterator[None]:
    """Two levels with an escalation ladder of seconds, in the stack's inventory."""
    path = lab_stack.inventory / "zz-ladder-test.yaml"
    path.write_text(LADDER_LEVELS, encoding="utf-8")
    yield
    path.unlink()


def _unroutable(stack: Stack, speed: str) -> str:
    """An alert no rule routes: it ends Escalated (a human must take it) in seconds."""
    payload = alertmanager_payload(
        {"alertname": "LadderProbe", "ladder_test": speed, "test": uuid.uuid4().hex}
    )
    ref = stack.post("/webhook/alertmanager", payload).json()["incidents"][0]
    assert ref["flow_run_id"], ref
    return str(ref["flow_run_id"])


def _escalations(stack: Stack, run_id: str, path: str) -> list[dict]:
    return [m for m in _pages(stack, run_id, path) if "Not acknowledged" in str(m.get("title"))]


def test_nobody_acknowledges_the_next_person_then_the_backup_then_the_command_center(
    lab_stack: Stack, short_ladders: None
) -> None:
    from datetime import UTC, datetime

    from inventory.duty import on_duty
    from inventory.loader import load_inventory

    roster = load_inventory(lab_stack.inventory).rosters["operations"]
    run_id = _unroutable(lab_stack, "fast")
    run = wait_for_run(run_id, timeout_s=120)
    assert run.state is not None and run.state.name == "Escalated"
    # every step reached by its own page: the roster's next person, li.na (backup), the cc
    nxt = on_duty(roster, datetime.now(UTC)).next_person
    wait_for(lambda: _escalations(lab_stack, run_id, "/cc"), 90, "the command center paged")
    assert len(_escalations(lab_stack, run_id, person_path(str(nxt)))) == 1
    # li.na: as the backup (step 2), then as a command-center member (step 3)
    assert len(_escalations(lab_stack, run_id, person_path("li.na"))) == 2
    assert len(_escalations(lab_stack, run_id, person_path("zhang.wei"))) == 1
    assert len(_escalations(lab_stack, run_id, "/cc")) == 1  # each step once
    report = wait_for(
        lambda: "Escalation step 3" in (text := _report_text(lab_stack, run_id)) and text,
        30,
        "step 3 in the report",
    )
    for n in (1, 2):  # appended after the run ended, or (a busy machine) in its own report
        assert f"Escalation step {n}" in report or f"Step {n}:" in report, report
    assert f"person-{str(nxt).replace('.', '-')}" in report  # the channel's secret name
    from tasks.prefect_api import get_client

    with get_client(sync_client=True) as client:
        tags = client.read_flow_run(uuid.UUID(run_id)).tags
    assert "escalated:3" in tags and "await-ack" in tags


def test_an_acknowledged_incident_stops_climbing(lab_stack: Stack, short_ladders: None) -> None:
    import time

    run_id = _unroutable(lab_stack, "slow")
    wait_for_run(run_id, timeout_s=120)
    done = _cli(lab_stack, "ack", run_id, "--as", "wang.fang")
    assert done.returncode == 0 and "acknowledged by wang.fang" in done.stdout, done.stderr
    again = _cli(lab_stack, "ack", run_id, "--as", "zhao.lei")
    assert again.returncode == 0 and "already acknowledged by wang.fang" in again.stdout
    time.sleep(25)  # past the first step (18 s) with the reconciler passing every 3 s
    assert not [p for path in ("/cc", person_path("li.na"), person_path("zhao.lei"))
                for p in _escalations(lab_stack, run_id, path)]  # fmt: skip
    report = _report_text(lab_stack, run_id)
    assert "## Acknowledged" in report and "By **wang.fang**." in report
    bad = _cli(lab_stack, "ack", run_id, "--as", "nobody")
    assert bad.returncode == 2 and "not a person in the inventory" in bad.stderr


def _report_text(stack: Stack, run_id: str) -> str:
    path = stack.state_dir / "reports" / f"incident-{run_id}.md"
    return path.read_text(encoding="utf-8") if path.exists() else ""


def test_a_person_reports_a_problem_by_hand(lab_stack: Stack, api_down: str) -> None:
    """`contingency incident open`: with a plan and a target the plan runs (level II: the
    command center activates it); without, tech support is paged to triage and take it."""
    bad = _cli(lab_stack, "incident", "open", "--summary", "x", "--as", "nobody",
               "--plan", "software_crash")  # fmt: skip
    assert bad.returncode == 2
    assert (
        "'nobody' is not a person" in bad.stderr and "--plan and --target go together" in bad.stderr
    )
    done = _cli(lab_stack, "incident", "open", "--summary", "The API answers 502 to users",
                "--as", "chen.jie", "--plan", "software_crash", "--target", "api",
                "--severity", "II")  # fmt: skip
    assert done.returncode == 0, done.stderr
    run_id = done.stdout.split()[1]
    wait_for(lambda: any(g.flow_run_id == run_id for g in open_gates()), 90, "activation gate")
    decide(run_id, "approve", "zhang.wei", approval_code(lab_stack, run_id), "go")
    run = wait_for_run(run_id, timeout_s=120)
    assert run.state is not None and run.state.is_completed(), run.state
    assert "source:human" in run.tags and "severity:II" in run.tags
    report = _report_text(lab_stack, run_id)
    assert "labctl restart api" in report and "The API answers 502 to users" in report


def test_a_reported_problem_waits_for_triage_then_runs_the_chosen_plan(
    lab_stack: Stack, api_down: str
) -> None:
    """Without a plan the incident waits for tech support's triage (初步判断): a person
    outside tech support is refused; the triage names the plan, target and level II, and
    the command center's activation then stands before the plan runs."""
    from tasks.prefect_api import get_client

    opened = _cli(lab_stack, "incident", "open", "--summary", "Checkout pages time out",
                  "--as", "chen.jie", "--target", "api")  # fmt: skip
    assert opened.returncode == 0, opened.stderr
    assert "tech support is paged to triage it" in opened.stdout
    run_id = opened.stdout.split()[1]

    def waiting() -> bool:
        with get_client(sync_client=True) as client:
            run = client.read_flow_run(uuid.UUID(run_id))
        return run.state is not None and run.state.is_paused() and "await-triage" in run.tags

    wait_for(waiting, 90, "the triage form")
    assert all(g.flow_run_id != run_id for g in open_gates())  # a form, not a sign-off
    refused = _cli(lab_stack, "incident", "triage", run_id, "--as", "chen.jie",
                   "--plan", "software_crash", "--target", "api")  # fmt: skip
    assert refused.returncode == 2
    assert "'chen.jie' is not a tech-support or command-center member" in refused.stderr
    wrong = _cli(lab_stack, "incident", "triage", run_id, "--as", "wang.fang",
                 "--plan", "software_crash", "--target", "nope")  # fmt: skip
    assert wrong.returncode == 2 and "target 'nope' is not in the inventory" in wrong.stderr
    done = _cli(lab_stack, "incident", "triage", run_id, "--as", "wang.fang", "--plan",
                "software_crash", "--target", "api", "--severity", "II",
                "--note", "api process gone")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert f"incident {run_id} triaged by wang.fang: plan software_crash on api" in done.stdout
    wait_for(lambda: any(g.flow_run_id == run_id for g in open_gates()), 90, "activation gate")
    decide(run_id, "approve", "zhang.wei", approval_code(lab_stack, run_id), "activate")
    run = wait_for_run(run_id, timeout_s=120)
    assert run.state is not None and run.state.is_completed(), run.state
    assert "severity:II" in run.tags and "triaged" in run.tags
    assert "severity:IV" not in run.tags
    report = _report_text(lab_stack, run_id)
    assert "## Triage" in report and "triaged after" in report and "by **wang.fang**" in report
    assert "plan `software_crash` on `api`" in report and "note: api process gone" in report
    assert "labctl restart api" in report
    support = [m for m in _pages(lab_stack, run_id, "/support") if "Triage needed" in m["title"]]
    assert support and "Checkout pages time out" in support[0]["title"]


def test_follow_up_actions_are_tracked_reminded_and_closed(lab_stack: Stack) -> None:
    """A review's follow-ups become tracked actions: listed, an overdue one reminds its
    owner on their own channel, `done` closes it, stats counts what is overdue."""
    from datetime import UTC, datetime, timedelta

    from contingency.runtime.reconciler import reconcile_once

    run_id = _unroutable(lab_stack, "none")
    wait_for_run(run_id, timeout_s=120)
    today = datetime.now(UTC).date()
    what = f"add a probe {uuid.uuid4().hex[:6]}"
    reviewed = _cli(
        lab_stack, "review", run_id, "--root-cause-category", "software",
        "--root-cause", "nobody watched it",
        "--action", f"{what}|zhao.lei|{today - timedelta(days=2):%Y-%m-%d}",
        "--action", f"write it down|li.na|{today + timedelta(days=30):%Y-%m-%d}",
    )  # fmt: skip
    assert reviewed.returncode == 0, reviewed.stderr
    listed = json.loads(_cli(lab_stack, "actions", "--json").stdout)
    mine = [a for a in listed if a["run_id"] == run_id]
    assert {(a["owner"], a["overdue"]) for a in mine} == {("zhao.lei", True), ("li.na", False)}
    late = next(a for a in mine if a["owner"] == "zhao.lei")

    def reminded() -> list[dict]:
        with pointed_at(lab_stack):
            reconcile_once()  # the stack's own reconciler reminds once a minute
        inbox = lab_stack.state_dir / "lab" / "inbox.jsonl"
        return [m for m in read(inbox, person_path("zhao.lei"))
                if late["id"] in str(m.get("message"))]  # fmt: skip

    pages = wait_for(reminded, 60, "the overdue reminder")
    assert pages[0]["title"] == f"Follow-up action overdue: {what}"
    assert len(reminded()) == 1  # once a day
    stats = _cli(lab_stack, "stats", "--since", "1h")
    assert "follow-up actions:" in stats.stdout and "overdue" in stats.stdout
    closed = _cli(lab_stack, "actions", "done", late["id"], "--note", "probe added")
    assert closed.returncode == 0 and "done" in closed.stdout, closed.stderr
    still = {a["id"] for a in json.loads(_cli(lab_stack, "actions", "--json").stdout)}
    assert late["id"] not in still
    every = json.loads(_cli(lab_stack, "actions", "--all", "--json").stdout)
    assert next(a for a in every if a["id"] == late["id"])["state"] == "done"
    unknown = _cli(lab_stack, "actions", "done", "nope-123")
    assert unknown.returncode == 1 and "no follow-up action" in unknown.stderr


@pytest.fixture
def ops_chat_down(lab_stack: Stack) -> Iterator[None]:
    """The operations chat channel points at a closed port (chat is down)."""
    import socket

    secret = lab_stack.state_dir / "secrets" / "ops-channel"
    saved = secret.read_text()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    secret.write_text(f"json://127.0.0.1:{port}/ops")
    yield
    secret.write_text(saved)


def test_when_the_chat_channel_fails_the_on_duty_person_gets_the_page_by_sms(
    lab_stack: Stack, api_down: str, ops_chat_down: None
) -> None:
    duty = {d["role"]: d for d in json.loads(_cli(lab_stack, "oncall", "--json").stdout)}
    on_duty = duty["operations"]["person"]
    run_id = _fire(lab_stack)
    run = wait_for_run(run_id, timeout_s=180)
    assert run.state is not None and run.state.is_completed(), run.state
    sms = wait_for(lambda: _opened(lab_stack, run_id, f"/sms/{on_duty}"), 30, "the SMS fallback")
    assert sms[0]["title"].startswith("[IV Ordinary] Incident opened")
    assert not _opened(lab_stack, run_id, "/ops")  # the chat never got it
    report = _report_text(lab_stack, run_id)
    sms_channel = f"sms-{on_duty.replace('.', '-')}"
    assert f"| {sms_channel} (fallback for ops-channel) | yes |" in report
    assert "| ops-channel | NO: delivery failed (3 tries) |" in report
