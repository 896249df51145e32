"""The Typer application and the console every command prints through."""

from __future__ import annotations

import sys
from typing import Any

import typer
from rich.console import Console
from rich.text import Text

from recstack.text import printable

app = typer.Typer(
    name="recstack",
    help="Cross-stack characterization of deep recommendation inference.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


class SafeConsole(Console):
    """A console for text that is partly other people's data (names from specs, anything
    read back from a store): control characters are shown as escapes, never sent to the
    terminal, and neither markup nor emoji codes are read from strings (style is given as
    ``style=``)."""

    def __init__(self, **options: Any):
        super().__init__(markup=False, emoji=False, **options)

    def render_str(self, text: str, **options: Any) -> Text:
        return super().render_str(printable(text), **options)


def make_console(stderr: bool = False) -> Console:
    """Piped output (logs, CI) keeps full tables instead of folding them to 80 columns."""
    stream = sys.stderr if stderr else sys.stdout
    return SafeConsole(stderr=stderr) if stream.isatty() else \
        SafeConsole(stderr=stderr, width=200)


console = make_console()
