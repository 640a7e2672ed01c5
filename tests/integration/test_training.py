"""Training records (培训) on the real stack: `contingency training add/list/due` round
trip through the Prefect API, and the plan document lists the sessions and who is due."""

from __future__ import annotations

import json
import uuid

from tests.fixtures_stack import Stack, cli


def test_training_is_recorded_listed_due_and_in_the_plan_document(lab_stack: Stack) -> None:
    topic = f"Failover of the uplinks {uuid.uuid4().hex[:6]}"
    bad = cli(lab_stack, "training", "add", "--topic", topic, "--trainer", "li.na",
              "--attendee", "ghost", "--date", "2026-12-01")  # fmt: skip
    assert bad.returncode == 2 and "attendees not in the inventory: ghost" in bad.stderr
    added = cli(lab_stack, "training", "add", "--topic", topic, "--trainer", "li.na",
                "--attendee", "wang.fang", "--attendee", "zhao.lei", "--date", "2026-12-01",
                "--material", "https://wiki.example.org/uplinks")  # fmt: skip
    assert added.returncode == 0 and "recorded" in added.stdout, added.stderr
    again = cli(lab_stack, "training", "add", "--topic", topic, "--trainer", "li.na",
                "--attendee", "wang.fang", "--date", "2026-12-01")  # fmt: skip
    assert "already recorded" in again.stdout
    drill = cli(lab_stack, "training", "add", "--kind", "drill", "--topic", f"{topic} (drill)",
                "--trainer", "zhang.wei", "--attendee", "wang.fang")  # fmt: skip
    assert drill.returncode == 0, drill.stderr
    listed = json.loads(cli(lab_stack, "training", "list", "--json").stdout)
    mine = [s for s in listed if s["topic"] == topic]
    assert len(mine) == 1 and mine[0]["attendees"] == ["wang.fang", "zhao.lei"]
    assert mine[0]["material"] == "https://wiki.example.org/uplinks"
    due = {r["person"]: r for r in json.loads(cli(lab_stack, "training", "due", "--json").stdout)}
    assert "wang.fang" not in due  # trained 2026-12-01 and drilled today
    assert due["zhao.lei"]["drill_due"] and not due["zhao.lei"]["training_due"]
    assert due["chen.jie"]["training_due"] and due["chen.jie"]["last_training"] is None
    doc = cli(lab_stack, "plans", "doc", "--lang", "zh")
    assert doc.returncode == 0, doc.stderr
    assert topic in doc.stdout and "365 天内未参加培训或演练的人员" in doc.stdout
    assert "| 陈杰 (Chen Jie) | 从未 | 从未 |" in doc.stdout  # by the name people know
