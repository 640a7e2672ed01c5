"""Reminders of follow-up actions (tasks/report/actions.py): an open action due by
tomorrow, or overdue, pages its owner once a day (their own channels, then their
fallback). Called by the reconciler's pass, at most once a minute."""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime
from typing import Any

from inventory.models import Inventory, RoleName
from tasks.report.actions import read_all, save

log = logging.getLogger("contingency.runtime.reminders")
STATE_WORDS = {
    "en": {"due": "due", "overdue": "overdue"},
    "zh": {"due": "即将到期", "overdue": "已逾期"},
}


def remind(client: Any, inv_loader: Any, today: date | None = None) -> list[str]:
    """One pass; what it did."""
    from inventory.settings import get_settings
    from tasks.notify import send_people

    today = today or datetime.now(UTC).date()
    due = [a for a in read_all(client) if a.needs_reminder(today)]
    if not due:
        return []
    inv: Inventory = inv_loader()
    lang = get_settings().language
    done = []
    for action in due:
        action.reminded = today  # first: a crash loses a reminder, never sends two
        save(client, action)
        person = inv.people.get(action.owner)
        role = person.roles[0] if person is not None and person.roles else RoleName.operations
        state = "overdue" if action.overdue(today) else "due"
        fields = {
            "state": STATE_WORDS.get(lang, STATE_WORDS["en"])[state],
            "action": action.action,
            "due": f"{action.due:%Y-%m-%d}",
            "run_id": action.run_id,
            "id": action.id,
        }
        sent = send_people("action_due", inv, fields, lang, role, [action.owner])
        ok = any(d.ok for d in sent)
        done.append(
            f"follow-up {action.id} {state}: {action.owner} reminded ({'ok' if ok else 'FAILED'})"
        )
        if not ok:
            log.warning(
                "follow-up %s: the reminder to %s was not delivered", action.id, action.owner
            )
    return done
