"""User strings neutralized per medium: terminal, messages, Markdown, CSV."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from recstack.text import (csv_cell, has_control, markdown_text, one_line, printable, shown)

ESCAPE = "\x1b[31mred\x1b[0m"


def test_printable_shows_control_characters_as_escapes() -> None:
    assert printable(ESCAPE) == "\\x1b[31mred\\x1b[0m"
    assert printable("a\x00b\u202ec") == "a\\x00b\\u202ec"
    assert printable("two\nlines\tok") == "two\nlines\tok"
    assert printable("two\nlines", keep_lines=False) == "two\\x0alines"


@given(st.text())
def test_printable_and_one_line_leave_no_control_character(text: str) -> None:
    assert not has_control(printable(text, keep_lines=False))
    line = one_line(text * 100)
    assert "\n" not in line and len(line) < 660


def test_shown_cuts_huge_values_without_building_them_whole() -> None:
    assert shown("x" * 50_000_000).endswith("(50000000 characters)")
    assert len(shown("x" * 50_000_000)) < 120
    assert shown(list(range(1000))) == "<list of 1000 items>"
    assert shown(3.5) == "3.5"


def test_markdown_text_cannot_make_an_image_a_link_or_markup() -> None:
    text = markdown_text("![x](http://remote.invalid/x.png) <img src=x> *a*|b\nc")
    assert "![" not in text and "](" not in text.replace("\\]", "")
    assert "<img" not in text and "&lt;img" in text
    assert "\\*a\\*\\|b c" in text


def test_csv_cell_defuses_formulas_and_control_characters() -> None:
    assert csv_cell("=HYPERLINK(1)") == "'=HYPERLINK(1)"
    assert csv_cell("+1") == "'+1" and csv_cell("@x") == "'@x"
    assert csv_cell("rmc1\x00") == "rmc1\\x00"
    assert csv_cell("rmc1 b1") == "rmc1 b1"
