"""The review form in the real Prefect UI (Playwright, Debian's Chromium): run the
`incident-review` deployment, press Resume, fill category, root cause, lessons and a
follow-up action (owner, due date from the date picker), submit. An unknown owner is
refused and the form opens again saying why; the accepted review lands in the report."""

from __future__ import annotations

from playwright.sync_api import Page
from playwright.sync_api import TimeoutError as PlaywrightTimeout
from prefect.client.orchestration import get_client
from prefect.deployments import run_deployment

from contingency.runtime.waiting import wait_for_run
from tests.fixtures_stack import Stack, wait_for
from tests.integration.test_review import incident  # noqa: F401 - fixture
from tests.integration.test_ui import browser, page  # noqa: F401 - fixtures


def _form(run_id: object) -> str | None:
    """The open form's Paused state (a new one each time the flow asks again), or None."""
    with get_client(sync_client=True) as client:
        state = client.read_flow_run(run_id).state  # type: ignore[arg-type]
    return str(state.id) if state and state.is_paused() else None


def _paused(run_id: object) -> bool:
    return _form(run_id) is not None


def _fill(ui: Page, stack: Stack, run_id: str, owner: str, expect: str, tries: int = 3) -> None:
    opened = _form(run_id)
    ui.goto(f"{stack.ui_url}/runs/flow-run/{run_id}")
    ui.get_by_role("button", name="Resume").click()
    dialog = ui.get_by_role("dialog")
    dialog.get_by_text("Review of incident").wait_for()
    dialog.get_by_text(expect).first.wait_for()
    select = dialog.locator("button.p-select-button__control")
    select.press("ArrowDown")  # opens the listbox (a click only focuses it)
    ui.get_by_role("option", name="network", exact=True).click()
    dialog.get_by_role("button", name="Add item").click()
    fields = dialog.locator("textarea")
    fields.nth(0).fill("li.na")  # reviewer
    fields.nth(1).fill("the uplink flapped")  # root cause
    fields.nth(2).fill("restart was automatic")  # went well
    fields.nth(3).fill("no alert on the uplink")  # went badly
    fields.nth(4).fill("alert on uplink errors")  # follow-up action
    fields.nth(5).fill(owner)
    dialog.locator("button.p-date-button__control").click()
    ui.locator("input.p-native-date-input__control").fill("2026-12-31")
    ui.get_by_role("button", name="Apply").click()
    dialog.get_by_role("button", name="Submit").click()
    try:
        dialog.wait_for(state="hidden", timeout=15_000)
    except PlaywrightTimeout:
        # The dialog stays open when the submission did not go through: the UI's own
        # validation (a widget that did not take a value), or the server answering the
        # resume with an error ("database is locked" on SQLite while the whole suite
        # writes; the UI then says "Something went wrong"). The run still waits: submit
        # again, as a person would.
        if _form(run_id) != opened:
            # The flow took the answer (and asked again, or went on) while the UI, slow
            # under the whole suite, had not closed the dialog: the report's checks in the
            # test say whether it was the right answer.
            ui.keyboard.press("Escape")
            return
        if tries <= 1:
            said = dialog.inner_text(timeout=5_000)[-1500:] if dialog.is_visible() else ""
            raise AssertionError(f"the review form did not go through; it says:\n{said}") from None
        ui.keyboard.press("Escape")
        _fill(ui, stack, run_id, owner, expect, tries - 1)


def test_review_in_the_ui(lab_stack: Stack, page: Page, incident: str) -> None:  # noqa: F811
    run = run_deployment(
        "incident-review/incident-review", timeout=0,
        parameters={"incident_run_id": incident, "poll_s": 0.3},
        _sync=True,  # Playwright's loop runs in this thread
    )  # fmt: skip
    wait_for(lambda: _paused(run.id), 60, what="review form open")
    _fill(page, lab_stack, str(run.id), "nobody", expect="time to recover")
    wait_for(lambda: _paused(run.id), 60, what="review form open again")
    _fill(page, lab_stack, str(run.id), "wang.fang", expect="owner 'nobody' is not a person")
    final = wait_for_run(run.id, timeout_s=60)
    assert final.state is not None and final.state.is_completed(), final.state
    text = (lab_stack.state_dir / "reports" / f"incident-{incident}.md").read_text()
    assert "## Review" in text and "by li.na" in text
    assert "**root cause** (network): the uplink flapped" in text
    assert "**went badly**: no alert on the uplink" in text
    assert "| 1 | alert on uplink errors | wang.fang | 2026-12-31 |" in text
    assert "nobody" not in text.split("## Review", 1)[1]
