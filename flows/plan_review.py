"""The reminder of the plan's periodic review (预案定期评审): scheduled weekly
(``prefect.yaml``, ``plan-review-reminder``), it pages the command center when the next
review (``contingency plans review``) is due within ``warn_days``, or overdue."""

from __future__ import annotations

from datetime import UTC, datetime

from prefect import flow, get_run_logger

from inventory.loader import load_inventory
from inventory.models import RoleName
from inventory.revisions import current_version
from inventory.settings import get_settings
from tasks.notify import send
from tasks.prefect_api import get_client
from tasks.report.plan_reviews import next_due, read_all


@flow(name="plan-review-reminder")
def plan_review_reminder(warn_days: int = 30) -> str:
    """Page the command center if the plan's review is due within ``warn_days``."""
    logger = get_run_logger()
    settings = get_settings()
    path = settings.inventory_path()
    inv = load_inventory(path)
    with get_client(sync_client=True) as client:
        reviews = read_all(client)
    due = next_due(reviews, datetime.now(UTC).date(), settings.plan_review_days)
    version = current_version(inv.changelog, path)
    if not due.overdue and due.days_left > warn_days:
        said = f"plan version {version}: next review due {due.due}, nothing to remind"
        logger.info(said)
        return said
    fields = {
        "version": version,
        "due": f"{due.due}",
        "last": f"{due.last.date} ({due.last.by})" if due.last else "—",
        "days": settings.plan_review_days,
    }
    event = "plan_review_overdue" if due.overdue else "plan_review_due"
    sent = send(event, inv, fields, settings.language, roles=[RoleName.command_center])
    delivered = sum(1 for d in sent if d.ok)
    said = f"plan version {version}: review {'overdue since' if due.overdue else 'due'} " \
        f"{due.due}; command center paged on {delivered} of {len(sent)} channel(s)"  # fmt: skip
    (logger.info if delivered else logger.error)(said)
    if not delivered:
        raise RuntimeError(said)  # nobody was told: the run fails, visibly
    return said
