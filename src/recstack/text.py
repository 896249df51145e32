"""User strings made safe for each place recstack shows them.

Names in specs, run ids and anything read back from a store are data from someone else: they
may hold terminal escape sequences, NUL bytes, Markdown or mathtext. Each medium gets its own
neutralizer here (HTML is escaped by jinja2's autoescape, with :func:`printable` as its
finalizer for control characters); the CLI's console and error line pass everything through
:func:`printable`.
"""

from __future__ import annotations

import html
import re

# C0 and C1 control characters (tab and newline are handled per medium), DEL, and the
# Unicode bidirectional overrides that make text display in another order than it reads.
CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_LINE_BREAKS = re.compile("[\t\n]")
_WHITESPACE_BREAKS = re.compile("[\t\r\n]+")
# Inline Markdown syntax (CommonMark lets a backslash escape any ASCII punctuation):
# emphasis, code, links and images, tables, strikethrough, and the escape itself.
_MARKDOWN = re.compile(r"([\\`*_\[\]!|~])")
# Spreadsheets run a cell that starts with one of these as a formula.
_FORMULA_START = ("=", "+", "-", "@")

MESSAGE_LIMIT = 600
"""Characters of an error line before it is cut (a 50 MB name stays one readable line)."""
VALUE_LIMIT = 80
"""Characters of a value quoted inside a message."""
MISSING = "n/a"
"""How every table (CLI and report) shows a value not measured or not applicable: never a
zero, never blank."""


def _visible(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: object, keep_lines: bool = True) -> str:
    """``text`` with every control character shown as an escape (``\\x1b``), so that it
    prints as what it is and never acts on a terminal or a page. Tabs and newlines are kept
    unless ``keep_lines`` is false (one-line fields)."""
    out = CONTROL.sub(_visible, str(text))
    return out if keep_lines else _LINE_BREAKS.sub(_visible, out)


def has_control(text: str) -> bool:
    """Whether ``text`` holds a control character (newlines and tabs included)."""
    return CONTROL.search(text) is not None or _LINE_BREAKS.search(text) is not None


def clipped(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, saying how much was left out."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text) - limit} more characters)"


def one_line(message: object, limit: int = MESSAGE_LIMIT) -> str:
    """A message as one printable line of at most about ``limit`` characters."""
    return clipped(printable(message, keep_lines=False), limit)


def shown(value: object, limit: int = VALUE_LIMIT) -> str:
    """``repr(value)`` for a message, cut to ``limit`` characters; never builds the repr of
    a huge value whole."""
    if isinstance(value, str) and len(value) > limit:
        return clipped(repr(value[:limit]), limit + 2) + f" ({len(value)} characters)"
    if isinstance(value, (list, tuple, dict, set)) and len(value) > 16:
        return f"<{type(value).__name__} of {len(value)} items>"
    try:
        text = repr(value)
    except RecursionError:  # a self-referencing structure from a hostile file
        return f"<nested {type(value).__name__}>"
    return clipped(text, limit)


def markdown_text(value: object) -> str:
    """Text safe in a Markdown table cell or paragraph: HTML escaped (Markdown passes raw
    HTML through), Markdown syntax escaped (no link, image or emphasis can come from a
    name), control characters shown, one line."""
    text = html.escape(printable(_WHITESPACE_BREAKS.sub(" ", str(value))), quote=False)
    return _MARKDOWN.sub(r"\\\1", text)


def csv_cell(value: str) -> str:
    """A text cell safe in a spreadsheet: control characters shown, and a leading ``'``
    where the cell would otherwise be run as a formula."""
    text = printable(value)
    return "'" + text if text.startswith(_FORMULA_START) else text
