"""Options shared by several commands, and their parsing into library values."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from recstack.errors import RecstackError
from recstack.text import shown

ScaleOption = Annotated[
    float | None,
    typer.Option("--scale", help="Table rows relative to full size (e.g. 0.1). "
                                 "Default: full size wherever it fits in memory."),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
StoreOption = Annotated[str, typer.Option("--store", help="The results database file.")]
OversubscribeOption = Annotated[bool, typer.Option(
    "--oversubscribe", help="Allow more intra-op threads than the cores this process may use "
                            "(each operator then also measures waiting for a core).")]
DEFAULT_STORE = "results/recstack.duckdb"


def int_list(option: str, text: str) -> list[int]:
    """``"1,4,16"`` -> ``[1, 4, 16]``; anything else is a one-line error naming the option."""
    parts = [part.strip() for part in text.split(",") if part.strip()]
    values = [int(part) for part in parts if part.isascii() and part.isdigit()]
    if len(values) != len(parts):
        values = []
    if not values or any(v < 1 for v in values):
        raise RecstackError(f"{option}: {shown(text)} is not allowed; expected positive integers "
                            "separated by commas (e.g. 1,64,4096)")
    return values


def scaled(spec: Any, scale: float | None) -> Any:
    """``spec`` at ``--scale`` (checked: finite, > 0, tables within the spec's limits)."""
    from recstack.errors import SpecError
    from recstack.limits import check_scale

    if scale is None:
        return spec
    check_scale(scale)
    try:
        return spec.scaled(scale)
    except SpecError as error:
        raise error.for_option("--scale") from None
