"""The plan document (预案) as a Word file, converted from :func:`plandoc.render`'s markdown.

Understands only the markdown the generator emits: ``#`` to ``####`` headings (``#`` is
the document title), ``>`` quotes, GitHub pipe tables (``\\|`` escapes, ``<br>`` breaks),
``-``/``*`` bullets, ``1.`` numbered items (each list restarts at 1), paragraphs of
consecutive lines, and inline ``**bold**``, `` `code` `` (monospace), ``[text](url)``
(written "text (url)") and backslash escapes. Single ``*``/``_`` emphasis is left as
written (cron schedules and identifiers use those characters).
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from typing import Any

from docx import Document
from docx.oxml.ns import qn

MONO = "Consolas"
HEADING = re.compile(r"(#{1,6})\s+(.*?)(?:\s+#+)?\s*$")
NUMBERED = re.compile(r"\d+[.)]\s+")
SEPARATOR = re.compile(r"\|?\s*:?-+:?\s*(\|\s*:?-+:?\s*)*\|?")
RULE = re.compile(r"(?:(?:\*\s*){3,}|(?:-\s*){3,}|(?:_\s*){3,})")
CELL_SPLIT = re.compile(r"(?<!\\)\|")
BREAK = re.compile(r"<br\s*/?>", re.IGNORECASE)
INLINE = re.compile(
    r"\\(?P<esc>[!-/:-@\[-`{-~])"
    r"|(?P<ticks>`+)(?P<code>.+?)(?P=ticks)"
    r"|\*\*(?P<bold>.+?)\*\*"
    r"|\[(?P<text>[^\]]+)\]\((?P<url>[^)\s]+)\)"
)


def to_docx(markdown_text: str, lang: str) -> bytes:
    """The ``.docx`` bytes of ``markdown_text``; ``lang`` ``zh`` also sets CJK fonts."""
    doc = Document()
    if lang == "zh":
        _east_asian_font(doc, ["Normal"], "SimSun")
        _east_asian_font(doc, ["Title"] + [f"Heading {n}" for n in range(1, 10)], "SimHei")
    doc.core_properties.language = {"zh": "zh-CN", "en": "en-US"}.get(lang, lang)
    previous, num_id = "", 0
    for kind, lines in _blocks(markdown_text):
        if kind == "heading":
            match = HEADING.match(lines[0])
            assert match
            level = min(len(match.group(1)) - 1, 9)
            paragraph = doc.add_heading("", level)
            _inline(paragraph, match.group(2))
            if level == 0 and not doc.core_properties.title:
                doc.core_properties.title = paragraph.text
        elif kind == "table":
            _table(doc, lines)
        elif kind == "quote":
            quoted = " ".join(line.lstrip(">").strip() for line in lines)
            has_quote = "Quote" in doc.styles
            _inline(
                doc.add_paragraph(style="Quote" if has_quote else None),
                quoted,
                italic=not has_quote,
            )
        elif kind == "bullet":
            _inline(doc.add_paragraph(style="List Bullet"), " ".join(lines)[2:].strip())
        elif kind == "number":
            paragraph = doc.add_paragraph(style="List Number")
            num_id = num_id if previous == "number" else _restarted_list(doc)
            paragraph._p.get_or_add_pPr().get_or_add_numPr().get_or_add_numId().val = num_id
            _inline(paragraph, NUMBERED.sub("", " ".join(lines), count=1))
        else:
            _inline(doc.add_paragraph(), " ".join(lines))
        previous = kind
    out = io.BytesIO()
    doc.save(out)
    return out.getvalue()


def _kind(line: str) -> str:
    if not line or RULE.fullmatch(line):
        return ""
    if HEADING.match(line):
        return "heading"
    if line.startswith(("|", ">")):
        return "table" if line[0] == "|" else "quote"
    if line.startswith(("- ", "* ")):
        return "bullet"
    return "number" if NUMBERED.match(line) else "para"


def _blocks(text: str) -> Iterator[tuple[str, list[str]]]:
    """(kind, lines) of each block; a plain line continues a paragraph, item or quote."""
    kind, lines = "", []
    for raw in text.splitlines():
        line = raw.strip()
        new = _kind(line)
        if (new == kind and kind in ("table", "quote", "para")) or (
            new == "para" and kind in ("bullet", "number", "quote")
        ):
            lines.append(line)
            continue
        if kind:
            yield kind, lines
        kind, lines = new, [line]
    if kind:
        yield kind, lines


def _table(doc: Any, lines: list[str]) -> None:
    rows = [_cells(line) for line in lines if not SEPARATOR.fullmatch(line)]
    if not rows:
        return
    width = len(rows[0])
    table = doc.add_table(rows=len(rows), cols=width)
    table.style = "Table Grid"
    for r, row in enumerate(rows):
        for c, text in enumerate((row + [""] * width)[:width]):
            _inline(table.cell(r, c).paragraphs[0], text, bold=r == 0)


def _cells(line: str) -> list[str]:
    line = line.strip().removeprefix("|")
    if line.endswith("|") and not line.endswith("\\|"):
        line = line[:-1]
    return [cell.strip().replace("\\|", "|") for cell in CELL_SPLIT.split(line)]


def _inline(paragraph: Any, text: str, bold: bool = False, italic: bool = False) -> None:
    """Runs for ``text``: bold, monospace code, links as "text (url)", ``<br>`` breaks."""
    for i, part in enumerate(BREAK.split(text)):
        if i:
            paragraph.add_run().add_break()
        pos = 0
        for match in INLINE.finditer(part):
            _run(paragraph, part[pos : match.start()], bold, italic)
            if match["esc"] is not None:
                _run(paragraph, match["esc"], bold, italic)
            elif match["code"] is not None:
                code = match["code"].strip() or match["code"]
                _run(paragraph, code, bold, italic).font.name = MONO
            elif match["bold"] is not None:
                _inline(paragraph, match["bold"], True, italic)
            else:
                _inline(paragraph, match["text"], bold, italic)
                if match["url"] != match["text"]:
                    _run(paragraph, f" ({match['url']})", bold, italic)
            pos = match.end()
        _run(paragraph, part[pos:], bold, italic)


def _run(paragraph: Any, text: str, bold: bool, italic: bool) -> Any:
    if not text:
        return None
    run = paragraph.add_run(text)
    run.bold, run.italic = bold or None, italic or None
    return run


def _restarted_list(doc: Any) -> int:
    """A new numbering instance of "List Number" that starts again at 1."""
    numbering = doc.part.numbering_part.element
    style_num = doc.styles["List Number"].element.pPr.numPr.numId.val
    num = numbering.add_num(numbering.num_having_numId(style_num).abstractNumId.val)
    num.add_lvlOverride(ilvl=0).add_startOverride(1)
    return int(num.numId)


def _east_asian_font(doc: Any, styles: list[str], font: str) -> None:
    for name in styles:
        if name in doc.styles:
            fonts = doc.styles[name].element.get_or_add_rPr().get_or_add_rFonts()
            fonts.attrib.pop(qn("w:eastAsiaTheme"), None)  # a theme font wins over a name
            fonts.set(qn("w:eastAsia"), font)
