"""The report in zh and en: the report's own words translated, everything else as is."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from inventory.settings import get_settings
from tasks.report.render import Timeline, render_report

COMMANDS = [{"host": "web1", "command": "labctl restart web", "exit_code": 0, "duration_s": 0.2}]


def _render(lang: str) -> str:
    timeline = Timeline()
    timeline.add(
        "alert received", "ServiceDown {'service': 'web'}", at=datetime(2026, 1, 1, tzinfo=UTC)
    )
    return render_report(
        "T", {"outcome": "recovered", "alert": "ServiceDown"}, timeline, COMMANDS,
        {"Notifications": "| x |"}, lang=lang,
    )  # fmt: skip


def test_en_is_unchanged_and_zh_uses_the_plans_terms() -> None:
    en, zh = _render("en"), _render("zh")
    assert "## Timeline" in en and "- **outcome**: recovered" in en and "| alert received |" in en
    assert "## 事件时间线" in zh and "- **结果**: 已恢复" in zh and "| 收到告警 |" in zh
    assert "## 通知记录" in zh and "| 主机 | 命令 | 结果 | 退出码 | 耗时 (秒) | 输出 (末行) |" in zh
    assert "labctl restart web" in zh and "ServiceDown {'service': 'web'}" in zh  # as written


def test_the_gate_form_follows_the_language(monkeypatch: pytest.MonkeyPatch) -> None:
    from flows.incident import _gate_description
    from inventory.alert import Alert
    from remediations.plan import Plan, SshAction

    step = SshAction(host="web1", command="labctl restart web")
    plan = Plan(plan="software_crash", target="web", actions=[step])
    alert = Alert(fingerprint="f", labels={"alertname": "ServiceDown"})
    monkeypatch.setenv("CONTINGENCY_LANGUAGE", "zh")
    get_settings.cache_clear()
    try:
        zh = _gate_description(alert, plan, Timeline())
    finally:
        monkeypatch.delenv("CONTINGENCY_LANGUAGE")
        get_settings.cache_clear()
    assert zh.startswith("## 指挥中心审批：对 `web` 执行 `software_crash`")
    assert "一次性验证码" in zh
    assert _gate_description(alert, plan, Timeline()).startswith("## Sign-off:")
