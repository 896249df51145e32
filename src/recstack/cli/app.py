"""The Typer application and the console every command prints through."""

from __future__ import annotations

import sys

import typer
from rich.console import Console

app = typer.Typer(
    name="recstack",
    help="Cross-stack characterization of deep recommendation inference.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
# Piped output (logs, CI) keeps full tables instead of folding them to 80 columns.
console = Console() if sys.stdout.isatty() else Console(width=200)
