"""The Word rendering of the plan document keeps every heading, table cell, list item and
inline mark of the markdown, and sets Chinese fonts for ``zh``."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import docx
import pytest
import yaml
from docx.oxml.ns import qn

from contingency.cli.plandoc import TEXT, render
from contingency.cli.plandoc_docx import to_docx
from inventory.loader import load_inventory
from inventory.models import PlanName, RoleName

LAB = Path(__file__).resolve().parents[2] / "inventory" / "examples" / "lab"

SAMPLE = """\
# 信息系统应急处置预案 Plan

> 由 **Contingency** 于 `2026-01-01` 自动生成。

## 1. 总则

First line of a paragraph
continues here with **粗体** and `a | b` and [the docs](https://example.com/docs).

An escaped \\*star\\* and a cron 0 1 * * * stay as written.

### 软件故障 (`software_crash`)

**处置步骤**

1. 探测服务健康状态
2. 重启 `systemctl restart app`

- **审批**: 需要
* star item

1. 第二个列表

#### 处置手册 `clear-tmp`: 清理

| 角色 | 职责 | 命令 |
|---|---|---|
| 应急指挥中心 (`command_center`) | a \\| b | `x \\| y`<br>第二行 |
| **审批** | 0 1 * * * | [site](https://x.org) |
"""


def _open(data: bytes) -> Any:
    return docx.Document(io.BytesIO(data))


def _all_text(doc: Any) -> str:
    cells = [cell.text for table in doc.tables for row in table.rows for cell in row.cells]
    return "\n".join([p.text for p in doc.paragraphs] + cells)


def _runs(doc: Any) -> list[Any]:
    paragraphs = list(doc.paragraphs) + [
        p
        for table in doc.tables
        for row in table.rows
        for cell in row.cells
        for p in cell.paragraphs
    ]
    return [run for p in paragraphs for run in p.runs]


def test_headings_quote_and_paragraphs() -> None:
    doc = _open(to_docx(SAMPLE, "zh"))
    headings = [
        (p.style.name, p.text)
        for p in doc.paragraphs
        if p.style.name.startswith(("Title", "Heading"))
    ]
    assert headings == [
        ("Title", "信息系统应急处置预案 Plan"),
        ("Heading 1", "1. 总则"),
        ("Heading 2", "软件故障 (software_crash)"),
        ("Heading 3", "处置手册 clear-tmp: 清理"),
    ]
    assert doc.core_properties.title == "信息系统应急处置预案 Plan"
    assert doc.core_properties.language == "zh-CN"
    quote = next(p for p in doc.paragraphs if p.style.name == "Quote")
    assert quote.text == "由 Contingency 于 2026-01-01 自动生成。"
    texts = [p.text for p in doc.paragraphs]
    assert (
        "First line of a paragraph continues here with 粗体 and a | b and "
        "the docs (https://example.com/docs)." in texts
    )
    assert "An escaped *star* and a cron 0 1 * * * stay as written." in texts
    assert "处置步骤" in texts


def test_lists_restart_their_numbering() -> None:
    doc = _open(to_docx(SAMPLE, "en"))
    styled = [(p.style.name, p.text) for p in doc.paragraphs if p.style.name.startswith("List")]
    assert styled == [
        ("List Number", "探测服务健康状态"),
        ("List Number", "重启 systemctl restart app"),
        ("List Bullet", "审批: 需要"),
        ("List Bullet", "star item"),
        ("List Number", "第二个列表"),
    ]
    numbered = [p for p in doc.paragraphs if p.style.name == "List Number"]
    ids = [p._p.pPr.numPr.numId.val for p in numbered]
    assert ids[0] == ids[1] != ids[2]
    numbering = doc.part.numbering_part.element
    for num_id in {ids[0], ids[2]}:
        override = numbering.num_having_numId(num_id).lvlOverride_lst[0]
        assert override.startOverride.val == 1


def test_table() -> None:
    doc = _open(to_docx(SAMPLE, "zh"))
    [table] = doc.tables
    assert table.style.name == "Table Grid"
    cells = [[cell.text for cell in row.cells] for row in table.rows]
    assert cells == [
        ["角色", "职责", "命令"],
        ["应急指挥中心 (command_center)", "a | b", "x | y\n第二行"],
        ["审批", "0 1 * * *", "site (https://x.org)"],
    ]
    header = [run for cell in table.rows[0].cells for run in cell.paragraphs[0].runs]
    assert header and all(run.bold for run in header)
    assert not any(run.bold for run in table.cell(1, 1).paragraphs[0].runs)
    assert [run.bold for run in table.cell(2, 0).paragraphs[0].runs if run.text] == [True]


def test_inline_marks() -> None:
    doc = _open(to_docx(SAMPLE, "zh"))
    runs = _runs(doc)
    bold = {run.text for run in runs if run.bold}
    assert {"Contingency", "粗体", "审批", "处置步骤"} <= bold
    mono = {run.text for run in runs if run.font.name == "Consolas"}
    assert {"2026-01-01", "a | b", "systemctl restart app", "x | y", "software_crash"} <= mono
    assert "粗体" not in mono and not any(run.bold for run in runs if run.text == "a | b")
    text = _all_text(doc)
    for leftover in ("**", "`", "|---", "---|", "<br>", "](", "\\", "# ", "> "):
        assert leftover not in text


def test_east_asian_fonts_for_zh_only() -> None:
    zh = _open(to_docx(SAMPLE, "zh"))
    for style, font in [("Normal", "SimSun"), ("Title", "SimHei"), ("Heading 1", "SimHei")]:
        fonts = zh.styles[style].element.rPr.rFonts
        assert fonts.get(qn("w:eastAsia")) == font
        assert fonts.get(qn("w:eastAsiaTheme")) is None  # a theme font would win
    en = _open(to_docx(SAMPLE, "en"))
    assert en.core_properties.language == "en-US"
    rpr = en.styles["Normal"].element.rPr
    assert rpr is None or rpr.rFonts is None or rpr.rFonts.get(qn("w:eastAsia")) is None


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_lab_plan_document(lang: str) -> None:
    inv = load_inventory(LAB)
    markdown = render(inv, lang)
    doc = _open(to_docx(markdown, lang))
    text = _all_text(doc)
    sections = [line[3:] for line in markdown.splitlines() if line.startswith("## ")]
    assert sections
    heading_1 = [p.text for p in doc.paragraphs if p.style.name == "Heading 1"]
    assert heading_1 == [s.replace("`", "").replace("**", "") for s in sections]
    plans = yaml.safe_load(TEXT.read_text(encoding="utf-8"))["plans"]
    names = [role.value for role in RoleName] + [plan.value for plan in PlanName]
    specs = [spec for spec in inv.roles.values() if spec is not None]
    names += [spec.title_zh if lang == "zh" else spec.title_en for spec in specs]
    names += [plans[plan.value][lang]["name"] for plan in PlanName]
    found = [name for name in names if name and name in markdown]
    assert len(found) >= len(PlanName)
    assert [name for name in found if name not in text] == []
    assert doc.core_properties.title == markdown.splitlines()[0][2:]
    rows = sum(1 for line in markdown.splitlines() if line.startswith("|") and "---|" not in line)
    assert rows == sum(len(table.rows) for table in doc.tables)
    for leftover in ("**", "`", "|---"):
        assert leftover not in text
