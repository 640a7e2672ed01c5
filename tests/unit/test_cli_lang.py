"""The shell's messages in zh: every template fills the same fields in both languages."""

from __future__ import annotations

import string

from contingency.lang import ZH, msg


def test_every_zh_message_has_the_same_fields_as_its_english() -> None:
    def fields(text: str) -> set[str]:
        return {name for _, name, _, _ in string.Formatter().parse(text) if name}

    for en, zh in ZH.items():
        assert fields(en) == fields(zh), en
        assert any("\u4e00" <= ch <= "\u9fff" for ch in zh) or not any(c.isalpha() for c in en), en


def test_messages_in_both_languages() -> None:
    said = msg("zh", "incident {run_id} acknowledged by {person}", run_id="r1", person="wang.fang")
    assert said == "事件 r1 已由 wang.fang 确认接警"
    assert msg("en", "no host is held") == "no host is held"
    assert msg("zh", "a text nobody translated") == "a text nobody translated"
