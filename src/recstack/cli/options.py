"""Options shared by several commands, and their parsing into library values."""

from __future__ import annotations

from typing import Annotated

import typer

from recstack.errors import RecstackError

ScaleOption = Annotated[
    float | None,
    typer.Option("--scale", help="Table rows relative to full size (e.g. 0.1). "
                                 "Default: full size wherever it fits in memory."),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
StoreOption = Annotated[str, typer.Option("--store", help="The results database file.")]
DEFAULT_STORE = "results/recstack.duckdb"


def int_list(option: str, text: str) -> list[int]:
    """``"1,4,16"`` -> ``[1, 4, 16]``; anything else is a one-line error naming the option."""
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        values = []
    if not values or any(v < 1 for v in values):
        raise RecstackError(f"{option}: {text!r} is not allowed; expected positive integers "
                            "separated by commas (e.g. 1,64,4096)")
    return values


def check_scale(scale: float | None) -> None:
    if scale is not None and not scale > 0:
        raise RecstackError(f"--scale: {scale!r} is not allowed; expected a number greater "
                            "than 0 (1 is full size)")
