"""The board page, pure: what an alert says is escaped, never markup."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace

from contingency.intake.board import render_board


def test_alert_text_is_escaped_and_ended_incidents_offer_takeover() -> None:
    now = datetime(2026, 12, 7, 12, tzinfo=UTC)
    state = SimpleNamespace(name="Escalated", is_final=lambda: True, is_paused=lambda: False)
    run = SimpleNamespace(
        id="r1", name="x", tags=["incident", "severity:III"], state=state,
        parameters={"alert": {"labels": {"alertname": "<script>alert(1)</script>"}}},
        start_time=now, expected_start_time=now,
    )  # fmt: skip
    page = render_board([run], None, [], "tok", lambda _: "http://ui/r1", now)
    assert "<script>alert(1)" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert 'action="/board/takeover"' in page and 'name="csrf" value="tok"' in page
    assert render_board([], None, [], "tok", str, now).count("No open incidents.") == 1
