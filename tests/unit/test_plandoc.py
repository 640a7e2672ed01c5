"""The generated plan document: the plan's seven sections, the five stages with each
role's duty, every plan, role, person, rule and schedule, in both languages, each fact
said once and no English left in the zh rendering — so the paper plan cannot drift from
what runs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from contingency.cli.plandoc import TEXT, render, to_html
from contingency.runtime.deploy import read_deployments
from inventory.loader import load_inventory
from inventory.models import PlanName, RoleName

LAB = Path(__file__).resolve().parents[2] / "inventory" / "examples" / "lab"
DATA = yaml.safe_load(TEXT.read_text(encoding="utf-8"))
SECTIONS = {
    "zh": ["一、引言", "二、组织架构与职责", "三、应急预案分类", "四、应急处置流程",
           "五、培训与演练", "六、预案修订与更新", "七、结语"],
    "en": ["1. Introduction", "2. Organisation and responsibilities", "3. Plan categories",
           "4. Response procedure", "5. Training and drills", "6. Revision and update",
           "7. Closing"],
}  # fmt: skip
STAGES = {
    "zh": ["事件发现与报告", "初步判断", "应急响应", "问题解决与恢复", "事后处理与总结"],
    "en": ["Detection and report", "First judgement", "Response", "Resolution and recovery",
           "Aftermath and review"],
}  # fmt: skip
RESULTS = [
    ["game-day-service-stop-web", "2026-12-02 10:00 UTC", "pass", "recovered in 12 s"],
    ["drill-report-db", "2026-12-01 03:00 UTC", "pass", "RTO met"],
    ["drill-report-db", "2026-11-30 03:00 UTC", "FAIL", "checksum mismatch"],
]


def _sections(doc: str) -> list[str]:
    return [line[3:] for line in doc.splitlines() if line.startswith("## ")]


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_seven_sections_and_everything_appears(lang: str) -> None:
    inv = load_inventory(LAB)
    doc = render(inv, lang, last_results=RESULTS, training=[])
    assert _sections(doc) == SECTIONS[lang]
    assert [h for h in STAGES[lang] if re.search(rf"^### 4\.\d {h}$", doc, re.M)] == STAGES[lang]
    for plan in PlanName:
        assert DATA["plans"][plan.value][lang]["name"] in doc
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
        assert f"| {deployment['name']} |" in doc
    assert inv.runbooks, "the lab has runbooks"
    for name, runbook in inv.runbooks.items():
        colon = "：" if lang == "zh" else ": "
        assert f"`{name}`{colon}{runbook.text('title', lang)}" in doc
        assert all(f"`{step.name}`" in doc for step in runbook.steps)
        assert all(f"`{param}`" in doc for param in runbook.parameters)
        signoffs = [f"`{s.name}` | {'**审批**' if lang == 'zh' else '**sign-off**'} |"
                    for s in runbook.steps if s.kind == "approval"]  # fmt: skip
        assert all(s in doc for s in signoffs)
    for level in ("I", "II", "III", "IV"):  # the default severity levels
        assert re.search(rf"^\| {level} \S", doc, re.M), level
    assert "+86 10 5555 0101" in doc  # contacts
    assert doc.rstrip().endswith(DATA["defaults"]["closing"][lang])


def test_each_stage_names_what_each_role_does() -> None:
    doc = render(load_inventory(LAB), "zh")
    stage = doc.split("### 4.4 问题解决与恢复")[1].split("### 4.5")[0]
    # the seed's words, with the inventory's own role names
    assert "技术支持团队解决问题后，运维管理团队负责系统恢复。" in stage
    assert "| 运维管理团队 | 负责系统恢复；恢复后全面检查，确保系统正常运行。 |" in stage
    assert "**自动化处理**" in stage
    triage = doc.split("### 4.2 初步判断")[1].split("### 4.3")[0]
    assert "应急指挥中心组织技术支持团队对事件进行初步判断" in triage


def test_the_organisations_own_words_and_role_names_win(tmp_path: Path) -> None:
    (tmp_path / "inv.yaml").write_text(
        "roles:\n"
        "  tech_support: {title_zh: 信息技术部, duties_zh: 负责排障。}\n"
        "wording:\n"
        "  purpose: {zh: 为保障本行核心业务连续运行，制定本预案。}\n"
        "  category.network: {zh: 包括数据中心出口和分行专线中断。}\n"
        "  stage.respond.user_service: {zh: 通过门户公告和短信通知客户。}\n"
        "  closing: {en: Follow it.}\n",
        encoding="utf-8",
    )
    doc = render(load_inventory(tmp_path), "zh")
    assert "为保障本行核心业务连续运行，制定本预案。" in doc
    assert "为确保公司信息系统" not in doc  # the default purpose gave way
    assert "| 网络中断 | 包括数据中心出口和分行专线中断。 |" in doc
    assert "通过门户公告和短信通知客户。" in doc and "告知受影响的用户。" not in doc
    assert "应急指挥中心组织信息技术部对事件进行初步判断" in doc  # the role's own name
    assert "技术支持团队" not in doc
    assert doc.rstrip().endswith("Follow it.")  # only in English: shown rather than nothing


def test_unknown_wording_key_is_a_load_error(tmp_path: Path) -> None:
    from inventory.errors import InventoryError

    (tmp_path / "inv.yaml").write_text("wording:\n  stage.fix.operations: {zh: x}\n")
    with pytest.raises(InventoryError, match=r"inv\.yaml:2: .*stage\.fix\.operations"):
        load_inventory(tmp_path)


def _english_left(doc: str, inv_names: list[str]) -> list[str]:
    """Runs of two or more English words outside code, names and technical terms."""
    text = re.sub(r"`[^`]*`", " ", doc)
    text = re.sub(r"https?://\S+|\S+@\S+|[\w.-]*/[\w./-]+", " ", text)
    for name in inv_names:
        text = text.replace(name, " ")
    text = text.replace("Prefect API", " ")  # a product's name
    return re.findall(r"\b[A-Za-z]{2,}(?: [A-Za-z]{2,})+\b", text)


def test_no_english_left_in_the_zh_document() -> None:
    inv = load_inventory(LAB)
    results = [[*row[:3], "恢复用时 12 秒"] for row in RESULTS]  # a zh stack's details
    doc = render(inv, "zh", last_results=results, training=[])
    names = [p.display_name for p in inv.people.values()] + ["Asia/Shanghai"]
    assert _english_left(doc, names) == []
    assert "| PASS |" not in doc and "| 通过 |" in doc  # results in words
    # identifiers are not shown where a name exists
    for plan in PlanName:
        assert f"`{plan.value}`" not in doc
    for role in RoleName:
        assert not re.search(rf"(?<![-\w]){role.value}(?![-\w])", doc), role
    assert not re.search(r"[（(]`[a-z_]+`[）)]", doc)  # no identifier in brackets after a name
    # the check finds what it is for
    assert _english_left("| x | delete files older than this |", []) == [
        "delete files older than this"
    ]


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_durations_schedules_and_results_read_as_words(lang: str) -> None:
    doc = render(load_inventory(LAB), lang, last_results=RESULTS)
    assert not re.search(r"\b\d+s\b", doc)  # no "86400s"
    assert "每1" not in doc and "每 1 分钟" not in doc
    day = "1 天" if lang == "zh" else "1 day"
    assert f"| `report-db` | db1 | {day} |" in doc  # RPO
    daily = "每天 03:00，时区 UTC" if lang == "zh" else "daily at 03:00 UTC"
    assert "| restore-drill | " in doc and daily in doc
    weekly = "每周一 09:00，时区 Asia/Shanghai" if lang == "zh" else "Mondays at 09:00"
    assert weekly in doc
    # the results' trend: runs, passed, not passed, latest
    latest = "通过" if lang == "zh" else "pass"
    assert f"| drill-report-db | 2 | 1 | 1 | {latest} | `-+` |" in doc


def test_timeouts_and_rails_are_said_once(tmp_path: Path) -> None:
    doc = render(load_inventory(LAB), "en")
    assert doc.count("reminder to the approvers after") == 1
    assert doc.count("a cooldown of") == 1 and doc.count("contingency freeze") == 1
    (tmp_path / "inv.yaml").write_text(
        "gate_policies:\n  software_crash: {remind_after_s: 120, backup_after_s: 240,"
        " abort_after_s: 600, two_person: true}\n"
    )
    doc = render(load_inventory(tmp_path), "en")
    row = next(line for line in doc.splitlines() if line.startswith("| Software crash |"))
    assert row == (
        "| Software crash | required from two different command-center members "
        "(destructive plan) | 2 min | 4 min | 10 min |"
    )
    assert "| Data loss | required from two different" in doc and "| 1 h |" in doc


def test_html() -> None:
    html = to_html(render(load_inventory(LAB), "zh"), "zh")
    assert html.startswith("<!doctype html>") and '<html lang="zh">' in html
    assert "<table>" in html and "应急指挥中心" in html
    assert "<title>信息系统应急处置预案</title>" in html
