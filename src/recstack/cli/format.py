"""Formatting of numbers, sizes and model structure for tables (presentation only)."""

from __future__ import annotations

import json
import math
import sys
from typing import Any

from recstack.text import MISSING
from recstack.units import human_bytes


def count(n: float) -> str:
    for unit, size in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= size:
            return f"{n / size:.3g}{unit}"
    return f"{n:g}"


nbytes = human_bytes


def ms(value: float | None) -> str:
    if value is None or value != value:
        return MISSING
    return f"{value:.3g}" if value < 100 else f"{value:.0f}"


def rate(value: float | None) -> str:
    return MISSING if value is None or value != value else count(value)


def rows(table_rows: list[int]) -> str:
    groups: list[list[int]] = []
    for r in table_rows:
        if groups and groups[-1][1] == r:
            groups[-1][0] += 1
        else:
            groups.append([1, r])
    return " + ".join(f"{n}x{count(r)}" for n, r in groups)


def widths(values: list[int]) -> str:
    return "-".join(str(w) for w in values)


def mlp(summary: dict[str, Any]) -> str:
    kind = summary["model_type"]
    if kind in ("din", "dien"):
        return f"att {widths(summary['attention_mlp'])}, top {widths(summary['top_mlp'])}"
    parts = []
    if kind == "dlrm":
        parts.append(f"bot {widths(summary['bottom_mlp'])}")
    elif kind in ("wnd", "mtwnd"):
        parts.append(f"dense {summary['dense_features']}")
    parts.append(f"top {widths(summary['top_mlp'])}")
    if kind == "mtwnd":
        parts.append(f"{summary['num_tasks']}x tasks {widths(summary['task_mlp'])}")
    return ", ".join(parts)


def lookups(summary: dict[str, Any]) -> str:
    distinct = sorted(set(summary["lookups_per_table"]), reverse=True)
    text = "/".join(str(n) for n in distinct)
    if not summary["pooling_fixed"]:
        text = f"1..{text}"
    if summary["sequence_length"]:
        text += f" + seq {summary['sequence_length']}"
    return text


def _without_nan(data: Any) -> Any:
    """NaN and infinities (a value not measured or not defined) as null: JSON has neither, and
    readers other than Python's reject them."""
    if isinstance(data, float) and not math.isfinite(data):
        return None
    if isinstance(data, dict):
        return {key: _without_nan(value) for key, value in data.items()}
    if isinstance(data, (list, tuple)):
        return [_without_nan(value) for value in data]
    return data


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(_without_nan(data), indent=2, default=str,
                                allow_nan=False) + "\n")
