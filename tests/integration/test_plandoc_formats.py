"""The plan document in each format the organisation circulates, through the real CLI
(`contingency plans doc --format md|html|docx`): every section, plan, runbook, role,
person and schedule appears in each; the html is rendered by Chromium into a PNG and the
docx read back into text, for a look (both are kept in the test's directory)."""

from __future__ import annotations

import io
import os
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import docx
import pytest
import yaml
from playwright.sync_api import Browser

from contingency.cli.plandoc import TEXT
from contingency.runtime.deploy import read_deployments
from inventory.loader import load_inventory
from inventory.models import PlanName, RoleName
from tests.fixtures_stack import CLI
from tests.integration.test_ui import browser  # noqa: F401 - the same Chromium fixture

LAB = Path(__file__).resolve().parents[2] / "inventory" / "examples" / "lab"
DATA = yaml.safe_load(TEXT.read_text(encoding="utf-8"))
FORMATS = ("md", "html", "docx")
GLYPHS = """() => {
  const draw = (s) => { const c = document.createElement('canvas'); c.width = 200;
    c.height = 40; const x = c.getContext('2d'); x.font = '24px sans-serif';
    x.fillText(s, 0, 30); return c.toDataURL(); };
  return {cjk: draw('应急指挥中心'), missing: draw('\\u{10FFF0}\\u{10FFF1}\\u{10FFF2}'
    + '\\u{10FFF3}\\u{10FFF4}\\u{10FFF5}')};
}"""
"""Chinese text and six characters no font has, drawn by Chromium: the same pixels mean
Chinese comes out as empty boxes (no CJK font installed)."""


def _cli(lang: str, fmt: str, out: Path) -> Path:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "CONTINGENCY_"))}
    path = out / f"plan-{lang}.{fmt}"
    argv = [*CLI, "plans", "doc", "--lang", lang,
            "--format", fmt, "--output", str(path), "--inventory", str(LAB),
            "--state-dir", str(out / "state")]  # fmt: skip
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return path


def _expected(lang: str) -> list[str]:
    """What a reader must find: sections, plans, runbooks, roles, people, schedules."""
    inv = load_inventory(LAB)
    t = DATA[lang]
    names = list(t["sections"]) + list(t["stage_titles"].values())
    names += [DATA["plans"][p.value][lang]["name"] for p in PlanName]
    names += [rb.text("title", lang) for rb in inv.runbooks.values()]
    names += [(spec.title_zh if lang == "zh" else spec.title_en) for spec in inv.roles.values()]
    names += [r.value for r in RoleName if r.value not in inv.roles]  # none: all are named
    names += [p.display_name for p in inv.people.values()]
    names += [d["name"] for d in read_deployments()]
    return names


def _docx_text(path: Path) -> str:
    doc = docx.Document(io.BytesIO(path.read_bytes()))
    cells = [c.text for table in doc.tables for row in table.rows for c in row.cells]
    return "\n".join([p.text for p in doc.paragraphs] + cells)


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_each_format_has_the_whole_plan(lang: str, tmp_path: Path, browser: Browser) -> None:  # noqa: F811
    with ThreadPoolExecutor(3) as pool:
        md, html, word = pool.map(lambda fmt: _cli(lang, fmt, tmp_path), FORMATS)
    expected = _expected(lang)
    assert len(expected) > 30

    text = md.read_text(encoding="utf-8")
    assert [n for n in expected if n not in text] == []

    page = browser.new_page(viewport={"width": 1200, "height": 900})
    try:
        page.goto(html.as_uri())
        shown = page.inner_text("body")  # what a reader sees, markup gone
        png = page.screenshot(full_page=True, path=str(tmp_path / f"plan-{lang}.png"))
        height = page.evaluate("document.body.scrollHeight")
        tables = page.locator("table").count()
        glyphs = page.evaluate(GLYPHS)
    finally:
        page.close()
    assert [n for n in expected if n not in shown] == []
    assert "**" not in shown and "|---" not in shown
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 100_000 and height > 5000
    # every markdown table became a real table
    assert tables == sum(line.startswith("|---") for line in text.splitlines())
    assert glyphs["cjk"] != glyphs["missing"]  # Chinese drawn as glyphs, not empty boxes

    words = _docx_text(word)
    assert [n for n in expected if n not in words] == []
    assert "**" not in words and "`" not in words
    (tmp_path / f"plan-{lang}.docx.txt").write_text(words, encoding="utf-8")
    if lang == "zh":
        assert "English" not in words and "七、结语" in words
