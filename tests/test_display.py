"""attest_ledger.display: what it marks, checked against the running Python's Unicode data."""

from __future__ import annotations

import re
import unicodedata

from attest_ledger.display import HIDDEN, visible

MARKED = {"Cc", "Cf", "Cs", "Zl", "Zp"}


def test_the_table_is_exactly_the_characters_that_can_hide() -> None:
    pattern = re.compile(f"[{HIDDEN}]")
    for code in range(0x110000):
        char = chr(code)
        expected = unicodedata.category(char) in MARKED and char not in "\t\n"
        assert bool(pattern.fullmatch(char)) is expected, f"U+{code:04X}"


def test_visible_names_each_hidden_character_in_place() -> None:
    assert visible("plain text, unchanged") == "plain text, unchanged"
    assert visible("a\u202eb") == "a\u27e8U+202E\u27e9b"
    assert visible("\x00\x1b[31m") == "\u27e8U+0000\u27e9\u27e8U+001B\u27e9[31m"
    assert visible("\ud800") == "\u27e8U+D800\u27e9"
    assert visible("tag\U000e0041") == "tag\u27e8U+E0041\u27e9"
    assert visible("line\nnext\tcolumn") == "line\nnext\tcolumn"
