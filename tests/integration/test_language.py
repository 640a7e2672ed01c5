"""zh on a real stack (CONTINGENCY_LANGUAGE=zh): the report's own words and the pages in
the plan's terms (应急指挥中心, 事件时间线 …), the alert's own text as it came."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import requests

from contingency.cli.alerts import alertmanager_payload
from contingency.lab.inbox import read
from contingency.lab.launcher import crash_service
from contingency.runtime.waiting import wait_for_run
from tests.fixtures_stack import Stack, cli, pointed_at, start_stack, stop_stack, wait_for


@pytest.fixture(scope="module")
def zh_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    state_dir = tmp_path_factory.mktemp("zh-stack")
    stack = start_stack(state_dir, extra_env={"CONTINGENCY_LANGUAGE": "zh"})
    try:
        with pointed_at(stack):
            yield stack
    finally:
        stop_stack(state_dir)


def test_a_zh_stack_reports_and_pages_in_chinese(zh_stack: Stack) -> None:
    crash_service(zh_stack.settings, "api")
    labels = {"alertname": "ServiceDown", "service": "api", "test": uuid.uuid4().hex}
    ref = zh_stack.post("/webhook/alertmanager", alertmanager_payload(labels)).json()
    run_id = ref["incidents"][0]["flow_run_id"]
    run = wait_for_run(run_id, timeout_s=180)
    assert run.state is not None and run.state.is_completed(), run.state
    report = (zh_stack.state_dir / "reports" / f"incident-{run_id}.md").read_text()
    assert report.startswith("# 事件报告 ServiceDown — 已恢复")
    for words in (
        "## 事件时间线",
        "## 执行的命令",
        "## 通知记录",
        "| 时间 (UTC) | 事件 | 详情 |",
        "- **严重级别**: IV 一般（120 分钟内报告应急指挥中心）",
        "| 收到告警 |",
    ):
        assert words in report, words  # fmt: skip
    assert "labctl restart api" in report  # commands stay as they ran
    inbox = zh_stack.state_dir / "lab" / "inbox.jsonl"
    pages = wait_for(
        lambda: [m for m in read(inbox, "/cc") if run_id in str(m.get("message"))], 30, "pages"
    )
    assert any(str(m["title"]).startswith("【IV 一般】事件已立案") for m in pages), pages
    link = f"确认接警：{zh_stack.intake_url}/ack/{run_id}（或执行：contingency ack {run_id}"
    assert any(link in str(m["message"]) for m in pages), pages
    user, _, password = zh_stack.auth.partition(":")
    board = requests.get(f"{zh_stack.intake_url}/board", auth=(user, password), timeout=30)
    assert board.status_code == 200 and "<h1>应急指挥看板</h1>" in board.text
    assert "值班" in board.text and "报告异常" in board.text
    ack = requests.get(f"{zh_stack.intake_url}/ack/{run_id}", auth=(user, password), timeout=30)
    assert "<h1>确认接警</h1>" in ack.text and "确认接警</button>" in ack.text
    zh = {"CONTINGENCY_LANGUAGE": "zh"}
    took = cli(zh_stack, "ack", run_id, "--as", "wang.fang", env=zh)
    assert took.returncode == 0 and f"事件 {run_id} 已由 wang.fang 确认接警" in took.stdout
    again = cli(zh_stack, "ack", run_id, "--as", "zhao.lei", env=zh)
    assert "已由 wang.fang 于" in again.stdout and "UTC 确认接警" in again.stdout
    duty = cli(zh_stack, "oncall", env=zh)
    assert duty.returncode == 0 and "值班" in duty.stdout and "联系方式" in duty.stdout
    bad = cli(zh_stack, "incident", "open", "--summary", " ", "--as", "nobody", env=zh)
    assert bad.returncode == 2 and "'nobody' 不在清单人员中" in bad.stderr
