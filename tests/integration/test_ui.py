"""The gate in the real Prefect UI, driven with Playwright in Debian's Chromium:
open the waiting run, press Resume, fill the form, submit."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from contingency.runtime.waiting import wait_for_run
from tests.fixtures_stack import Stack
from tests.fixtures_stack import approval_code as _code
from tests.integration.test_incident_gates import (
    _open_incident,
    _paused,
    _report,
    report_down,  # noqa: F401 - fixture
)

CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def page(browser: Browser, lab_stack: Stack) -> Iterator[Page]:
    """A logged-in page: the embedded stack's API requires its auth string."""
    context = browser.new_context(viewport={"width": 1400, "height": 1100})
    try:
        page = context.new_page()
        page.goto(f"{lab_stack.ui_url}/login")
        page.locator("input[type=password]").fill(lab_stack.auth)
        page.get_by_role("button", name="Login").click()
        page.wait_for_url(lambda url: not url.endswith("/login"), timeout=15_000)
        yield page
    finally:
        context.close()


def test_ui_refuses_a_wrong_auth_string(browser: Browser, lab_stack: Stack) -> None:
    context = browser.new_context()
    try:
        page = context.new_page()
        page.goto(f"{lab_stack.ui_url}/login")
        page.locator("input[type=password]").fill("admin:wrong")
        page.get_by_role("button", name="Login").click()
        page.wait_for_timeout(2000)
        assert page.url.endswith("/login")
    finally:
        context.close()


def _fill_and_submit(
    page: Page, stack: Stack, run_id: str, approver: str, code: str, decision: str, comment: str
) -> bool:
    page.goto(f"{stack.ui_url}/runs/flow-run/{run_id}")
    page.get_by_role("button", name="Resume").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_text("Sign-off:").wait_for()
    assert dialog.get_by_text("labctl restart report").count() >= 1, "plan not shown"
    if decision != "approve":
        select = dialog.locator("button.p-select-button__control")
        select.press("ArrowDown")  # opens the listbox (a click only focuses it)
        page.get_by_role("option", name=decision, exact=True).click()
        assert select.inner_text().strip() == decision
    fields = dialog.locator("textarea")
    fields.nth(0).fill(approver)
    fields.nth(1).fill(code)
    fields.nth(2).fill(comment)
    dialog.get_by_role("button", name="Submit").click()
    try:
        dialog.wait_for(state="hidden", timeout=15_000)
    except Exception:  # noqa: BLE001 - reported by the caller
        page.screenshot(path="/tmp/ui-submit-failure.png")
        return False
    return True


def _submit(
    page: Page,
    stack: Stack,
    run_id: str,
    approver: str,
    code: str,
    decision: str = "approve",
    comment: str = "",
) -> None:
    """Resume → fill the form → Submit, as a person would. One reload-and-retry: the UI
    can load the form while the flow is between two pauses (after a refused decision),
    and on a busy CI machine the embedded SQLite server can refuse the resume once
    ("database is locked" → the UI's "Oops"); the run still waits, so try again, as a
    person would."""
    for _ in range(4):
        if _fill_and_submit(page, stack, run_id, approver, code, decision, comment):
            return
    raise AssertionError("the resume form did not close (see /tmp/ui-submit-failure.png)")


@pytest.mark.usefixtures("report_down")
def test_approve_in_the_ui(lab_stack: Stack, page: Page) -> None:
    run_id, _ = _open_incident(lab_stack)
    _submit(page, lab_stack, run_id, "zhang.wei", _code(lab_stack, run_id), comment="via UI")
    run = wait_for_run(run_id, timeout_s=60)
    assert run.state is not None and run.state.is_completed(), run.state
    text = _report(lab_stack, run_id)
    assert "recovered" in text and "via UI" in text


@pytest.mark.usefixtures("report_down")
def test_reject_in_the_ui(lab_stack: Stack, page: Page) -> None:
    run_id, _ = _open_incident(lab_stack)
    _submit(page, lab_stack, run_id, "li.na", _code(lab_stack, run_id, "li.na"), decision="reject")
    run = wait_for_run(run_id, timeout_s=60)
    assert run.state is not None and run.state.is_completed()
    text = _report(lab_stack, run_id)
    assert "rejected" in text and "No command was run." in text


@pytest.mark.usefixtures("report_down")
def test_wrong_code_in_the_ui_keeps_the_flow_waiting(lab_stack: Stack, page: Page) -> None:
    run_id, _ = _open_incident(lab_stack)
    code = _code(lab_stack, run_id)
    _submit(page, lab_stack, run_id, "zhang.wei", "000000" if code != "000000" else "111111")
    time.sleep(2.5)
    assert _paused(run_id), "a wrong code must leave the gate open"
    _submit(page, lab_stack, run_id, "zhang.wei", code)
    run = wait_for_run(run_id, timeout_s=60)
    assert run.state is not None and run.state.is_completed()
