"""The generated plan document names every plan, role, person, rule and schedule, in
both languages, so the paper plan cannot drift from what runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from contingency.cli.plandoc import render, to_html
from contingency.runtime.deploy import read_deployments
from inventory.loader import load_inventory
from inventory.models import PlanName, RoleName

LAB = Path(__file__).resolve().parents[2] / "inventory" / "examples" / "lab"


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_everything_appears(lang: str) -> None:
    inv = load_inventory(LAB)
    doc = render(inv, lang)
    for plan in PlanName:
        assert f"`{plan.value}`" in doc
    for role in RoleName:
        spec = inv.roles[role.value]
        assert (spec.title_zh if lang == "zh" else spec.title_en) in doc
        duties = spec.duties_zh if lang == "zh" else spec.duties
        assert duties and duties in doc
    for person in inv.people.values():
        assert person.display_name in doc
    for rule in inv.routing:
        assert f"`{rule.name}`" in doc
    for deployment in read_deployments():
        assert deployment["name"] in doc
    assert inv.runbooks, "the lab has runbooks"
    for name, runbook in inv.runbooks.items():
        assert f"`{name}`: {runbook.text('title', lang)}" in doc
        assert all(f"`{step.name}`" in doc for step in runbook.steps)
        assert all(f"`{param}`" in doc for param in runbook.parameters)
        signoffs = [f"`{s.name}` | {'**审批**' if lang == 'zh' else '**sign-off**'} |"
                    for s in runbook.steps if s.kind == "approval"]  # fmt: skip
        assert all(s in doc for s in signoffs)
    heads = (
        [
            "1. 总则",
            "2. 组织架构与职责",
            "3. 应急预案分类",
            "4. 应急处置流程",
            "5. 培训与演练",
            "6. 预案修订与更新",
        ]
        if lang == "zh"
        else [
            "1. Introduction",
            "2. Organisation and responsibilities",
            "3. Plan categories",
            "4. Response procedure",
            "5. Training and drills",
            "6. Revision and update",
        ]
    )
    assert [h for h in heads if f"## {h}" in doc] == heads


def test_sign_off_and_timeouts_come_from_the_inventory(tmp_path: Path) -> None:
    (tmp_path / "inv.yaml").write_text(
        "gate_policies:\n  software_crash: {remind_after_s: 120, backup_after_s: 240,"
        " abort_after_s: 600, two_person: true}\n"
    )
    doc = render(load_inventory(tmp_path), "en")
    assert "reminder to the approvers after 2 min" in doc and "after 10 min the gate" in doc
    assert "two different command-center members" in doc


def test_html() -> None:
    html = to_html(render(load_inventory(LAB), "zh"), "zh")
    assert html.startswith("<!doctype html>") and '<html lang="zh">' in html
    assert "<table>" in html and "应急指挥中心" in html
