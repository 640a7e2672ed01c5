"""The review form in the Prefect UI: run ``incident-review`` with the incident's run id;
the run pauses on a :class:`tasks.report.review.ReviewInput` form (Resume in the UI), and the
submitted review is appended to the incident's report. A review that names an unknown
person is refused with the reason shown in the form, which opens again."""

from __future__ import annotations

from prefect import flow, get_run_logger
from prefect.states import Completed, Failed, State

from inventory.loader import load_inventory
from inventory.settings import get_settings
from tasks.gate.wait import wait_for_input
from tasks.report.review import ReviewError, ReviewInput, append_review, incident_report, problems

WAIT_S = 7 * 24 * 3600
"""How long the form stays open."""


def _summary(report: str) -> str:
    """The report's title and summary lines (outcome, clocks), one heading level down."""
    head = report.split("\n## ", 1)[0].strip()
    return head.replace("# ", "### ", 1) if head.startswith("# ") else head


def _intro(run_id: str, lang: str) -> str:
    if lang == "zh":
        return (
            f"## 事件 `{run_id}` 复盘（总结）\n\n请填写根本原因、处置得当与不足之处，以及整改措施"
            "（负责人须为清单中的人员，截止日期格式 YYYY-MM-DD）。复盘内容将附在事件报告之后。\n\n"
        )
    return (
        f"## Review of incident `{run_id}`\n\n"
        "Root cause, what went well and badly, follow-up actions (owner = a person in "
        "the inventory, due date YYYY-MM-DD). Appended to the incident report.\n\n"
    )


@flow(name="incident-review", flow_run_name="review-{incident_run_id}")
def incident_review(incident_run_id: str, poll_s: float = 1.0) -> State:
    """Pause for the review of incident ``incident_run_id`` and append it to its report."""
    logger = get_run_logger()
    settings = get_settings()
    inv = load_inventory(settings.inventory_path())
    try:
        report = incident_report(incident_run_id, settings.reports_path)
    except ReviewError as exc:
        return Failed(message=str(exc))
    note = ""
    for n in range(100):
        form = ReviewInput.with_initial_data(
            description=note + _intro(incident_run_id, settings.language) + _summary(report)
        )
        review = wait_for_input(form, f"review-{n}", WAIT_S, poll_s)
        if bad := problems(review, inv):
            refused = "> **未通过**：" if settings.language == "zh" else "> **Refused**: "
            note = refused + "; ".join(bad) + "\n\n"
            logger.warning("review refused: %s", "; ".join(bad))
            continue
        try:
            done = append_review(incident_run_id, review, inv, settings.reports_path, settings)
        except ReviewError as exc:
            return Failed(message=str(exc))
        who = review.reviewer or "an unnamed reviewer"
        logger.info("review by %s appended to %s", who, done.path)
        return Completed(message=f"review by {who} appended")
    return Failed(message="too many refused reviews")
