"""The incident board in Debian's Chromium (Playwright) on the real stack: an Escalated
incident is taken over (接管) by a named person and closed by the command center's
summary (总结); both land in its report. No anonymous access, no cross-site posts."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import requests
from playwright.sync_api import Browser, Page

from contingency.cli.alerts import alertmanager_payload
from contingency.runtime.waiting import wait_for_run
from tests.fixtures_stack import Stack
from tests.integration.test_ui import browser  # noqa: F401 - the same Chromium fixture


@pytest.fixture
def board(browser: Browser, lab_stack: Stack) -> Iterator[Page]:  # noqa: F811
    """The board, logged in with the Prefect API's auth string (HTTP Basic)."""
    user, _, password = lab_stack.auth.partition(":")
    context = browser.new_context(http_credentials={"username": user, "password": password})
    try:
        page = context.new_page()
        yield page
    finally:
        context.close()


def _escalated(stack: Stack) -> str:
    labels = {"alertname": "BoardProbe", "test": uuid.uuid4().hex}
    ref = stack.post("/webhook/alertmanager", alertmanager_payload(labels)).json()
    run_id = str(ref["incidents"][0]["flow_run_id"])
    run = wait_for_run(run_id, timeout_s=120)
    assert run.state is not None and run.state.name == "Escalated"
    return run_id


def test_take_over_and_close_an_escalated_incident(lab_stack: Stack, board: Page) -> None:
    run_id = _escalated(lab_stack)
    board.goto(f"{lab_stack.intake_url}/board")
    row = board.locator(f'tr[data-run="{run_id}"]')
    assert row.locator(".sev").inner_text() == "IV"
    assert "Escalated" in row.locator(".state").inner_text()
    assert "operations:" in board.locator("body").inner_text()  # who is on duty
    takeover = row.locator('form[action="/board/takeover"]')
    takeover.locator("input[name=person]").fill("wang.fang")
    takeover.locator("input[name=text]").fill("restarting the probe by hand")
    row.get_by_role("button", name="take over (接管)").click()
    board.wait_for_url(f"{lab_stack.intake_url}/board")
    row = board.locator(f'tr[data-run="{run_id}"]')
    assert row.locator(".owner").inner_text() == "wang.fang"
    # the summary is the command center's: wang.fang (operations) is refused
    closing = row.locator('form[action="/board/close"]')
    closing.locator("input[name=person]").fill("wang.fang")
    closing.locator("input[name=text]").fill("done")
    row.get_by_role("button", name="close with summary (总结)").click()
    assert "the closing summary is the command center" in board.locator("body").inner_text()
    board.goto(f"{lab_stack.intake_url}/board")
    row = board.locator(f'tr[data-run="{run_id}"]')
    closing = row.locator('form[action="/board/close"]')
    closing.locator("input[name=person]").fill("zhang.wei")
    closing.locator("input[name=text]").fill("probe fixed; root cause in the review")
    row.get_by_role("button", name="close with summary (总结)").click()
    board.wait_for_url(f"{lab_stack.intake_url}/board")
    assert board.locator(f'tr[data-run="{run_id}"]').count() == 0
    report = (lab_stack.state_dir / "reports" / f"incident-{run_id}.md").read_text()
    assert "## Taken over" in report and "**wang.fang** took it over (接管)" in report
    assert "## Command center summary" in report and "By **zhang.wei**: probe fixed" in report


def test_the_board_refuses_anonymous_and_cross_site_requests(lab_stack: Stack) -> None:
    url = f"{lab_stack.intake_url}/board"
    assert requests.get(url, timeout=30).status_code == 401
    user, _, password = lab_stack.auth.partition(":")
    assert requests.get(url, auth=(user, "wrong"), timeout=30).status_code == 401
    page = requests.get(url, auth=(user, password), timeout=30)
    assert page.status_code == 200 and "Incident board" in page.text
    forged = requests.post(
        f"{url}/takeover",
        data={"run_id": str(uuid.uuid4()), "person": "wang.fang", "text": "x", "csrf": "nope"},
        auth=(user, password),
        timeout=30,
    )
    assert forged.status_code == 403


def test_report_a_problem_from_the_board_acknowledge_it_from_the_page_then_triage(
    lab_stack: Stack, board: Page
) -> None:
    """The "report a problem" form opens an incident that waits for tech support's triage
    (the same flow as `contingency incident open`); tech support's page carries a link
    that acknowledges it in the browser; triaged "by hand", it ends Escalated for a
    person, and the report says who reported, who triaged and who acknowledged."""
    from contingency.lab.inbox import read
    from contingency.runtime.people import triage
    from inventory.loader import load_inventory
    from tasks.prefect_api import get_client
    from tests.fixtures_stack import wait_for

    what = f"users cannot log in {uuid.uuid4().hex[:6]}"
    board.goto(f"{lab_stack.intake_url}/board")
    form = board.locator("form#report")
    form.locator("input[name=person]").fill("chen.jie")
    form.locator("input[name=text]").fill(what)
    form.locator("input[name=target]").fill("web")
    form.get_by_role("button", name="report").click()
    opened = board.locator("#opened").inner_text()
    run_id = opened.split()[1]
    inbox = lab_stack.state_dir / "lab" / "inbox.jsonl"

    def support(title: str) -> list[dict]:
        return [
            m
            for m in read(inbox, "/support")
            if run_id in str(m.get("message")) and title in str(m.get("title"))
        ]

    asked = wait_for(lambda: support("Triage needed"), 90, "tech support asked to triage")
    assert what in asked[0]["title"] and f"contingency incident triage {run_id}" in str(asked)
    board.goto(f"{lab_stack.intake_url}/board")
    row = board.locator(f'tr[data-run="{run_id}"]')
    assert "triage waiting" in row.locator(".state").inner_text()
    # the page's own link: a GET shows the incident, the button acknowledges
    page = wait_for(lambda: support("Incident opened"), 30, "the incident's page")[0]
    link = f"{lab_stack.intake_url}/ack/{run_id}"
    assert link in page["message"]
    board.goto(link)
    board.locator("input[name=person]").fill("wang.fang")
    board.get_by_role("button", name="acknowledge (接警)").click()
    board.wait_for_url(f"{lab_stack.intake_url}/board")
    assert board.locator(f'tr[data-run="{run_id}"] .ack').inner_text() == "wang.fang"
    board.goto(link)
    assert "Already acknowledged by wang.fang" in board.locator("#acked").inner_text()
    inv = load_inventory(lab_stack.inventory)
    with get_client(sync_client=True) as client:
        said = triage(
            client, run_id, {"person": "wang.fang", "note": "an LDAP problem, by hand"}, inv
        )
    assert "by hand" in said
    run = wait_for_run(run_id, timeout_s=120)
    assert run.state is not None and run.state.name == "Escalated"  # a person takes it
    assert "source:human" in run.tags and "await-triage" not in run.tags
    report = (lab_stack.state_dir / "reports" / f"incident-{run_id}.md").read_text()
    assert f"chen.jie: {what}" in report
    assert "by_hand after" in report and "by **wang.fang**" in report
    assert "| reported | reported by chen.jie" in report  # the timeline: not "unroutable"
    assert "acknowledged by **wang.fang**" in report
