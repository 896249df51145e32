"""Records for tests that store constructed results: every column a test does not name is
NULL (as a point that never measured it), so a test says only what it checks."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timezone
from typing import Any

import pandas as pd

from recstack.records import (Build, Hardware, HardwareRecord, PointRow, Profile,
                              ProfileRecord, TimingRecord, TimingStats)

__all__ = ["Build", "PointRow", "TimingRecord", "build", "hardware", "point", "profile",
           "stats", "timing"]


def _row(row_class: type, values: dict[str, Any]) -> Any:
    names = {f.name for f in dataclasses.fields(row_class)}
    unknown = set(values) - names
    if unknown:
        raise TypeError(f"{row_class.__name__} has no columns {sorted(unknown)}")
    return row_class(**{name: values.get(name) for name in names
                        if name in values or _required(row_class, name)})


def _required(row_class: type, name: str) -> bool:
    field = row_class.__dataclass_fields__[name]
    return field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING


def point(**values: Any) -> PointRow:
    """A ``points`` row; ``status`` defaults to ok and both times to now."""
    now = datetime.now(timezone.utc)
    return _row(PointRow, {"status": "ok", "started_at": now, "finished_at": now,
                           "level": "timing", **values})


def stats(**values: Any) -> TimingStats:
    return _row(TimingStats, values)


def build(**values: Any) -> Build:
    """How a timing point's model was built (the ``points`` columns of :class:`Build`)."""
    return _row(Build, values)


def timing(samples: pd.DataFrame | None = None, built: Build | None = None,
           **stat_values: Any) -> TimingRecord:
    frame = samples if samples is not None else pd.DataFrame(
        {"iteration": [], "latency_ns": []})
    return TimingRecord(samples=frame, stats=stats(**stat_values), build=built)


def profile(operators: pd.DataFrame, **values: Any) -> ProfileRecord:
    return ProfileRecord(operators=operators, profile=_row(Profile, values))


def hardware(**values: Any) -> HardwareRecord:
    return HardwareRecord(_row(Hardware, values))
