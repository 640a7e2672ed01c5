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


def test_the_board_speaks_the_plans_language() -> None:
    now = datetime(2026, 12, 7, 12, tzinfo=UTC)
    state = SimpleNamespace(name="Paused", is_final=lambda: False, is_paused=lambda: True)
    run = SimpleNamespace(
        id="r1", name="x", tags=["incident", "severity:III", "await-triage"], state=state,
        parameters={"alert": {"labels": {"alertname": "HumanReport"}}},
        start_time=now, expected_start_time=now,
    )  # fmt: skip
    zh = render_board([run], None, [], "tok", lambda _: "http://ui/r1", now, "zh")
    for text in ("应急指挥看板", "等待初步判断", "确认接警", "报告异常", "严重级别", "接管人"):
        assert text in zh, text
    for text in ("Incident board", "acknowledge", "Report a problem", "severity</th>"):
        assert text not in zh, text
    en = render_board([], None, [], "tok", str, now, "en")
    assert "No open incidents." in en and "当前没有未结事件" not in en
