"""The operators level's record: top-level operators by model part, and the iteration they
belong to (wall time, what no operator covers, the profiler's and the clock's readings)."""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

from recstack.records.declare import column, point_key_columns, table


@dataclass(frozen=True, kw_only=True)
class OperatorTime:
    """One top-level operator of one model part, per iteration (raw name: classifying it is
    analysis)."""

    part: str = column("VARCHAR", "the model part whose scope encloses it", since=2)
    op: str = column("VARCHAR", "the operator's name", since=2)
    calls: float = column("DOUBLE", "calls per iteration", "calls", since=2)
    time_us: float = column("DOUBLE", "inclusive time per iteration", "us", since=2)


@dataclass(frozen=True, kw_only=True)
class Profile:
    """One operator-profile point's iteration: wall time against operator time, the
    profiler's own cost, and the operator clock's reading (or why there is none)."""

    iterations: int = column("INTEGER", "profiled iterations", since=2)
    time_basis: str = column("VARCHAR", "cpu: operators' CPU time; cuda: device time of the "
                                        "kernels they launched", since=2)
    wall_us: float = column("DOUBLE", "mean profiled iteration", "us", since=2)
    operator_us: float = column("DOUBLE", "time inside top-level operators", "us", since=2)
    uncovered_us: float = column("DOUBLE", "wall time no operator covers", "us", since=2)
    profiled_median_us: float = column("DOUBLE", "median iteration under the profiler", "us",
                                       since=2)
    unprofiled_median_us: float = column(
        "DOUBLE", "median plain iteration of the same worker (before and after the profiler, "
                  "pooled)", "us", since=2)
    profiler_overhead: float | None = column(
        "DOUBLE", "profiled / plain median - 1, in the same worker; NULL when the plain "
                  "iterations before and after the profiler disagree (overhead_note)", since=2)
    trace_path: str | None = column("VARCHAR", "the Chrome trace kept, if any", since=2,
                                    default=None)
    profiler_outside_us: float | None = column(
        "DOUBLE", "lower bound on the profiler's added time outside operators (its scopes)",
        "us", since=6, default=None)
    clock_plain_us: float | None = column("DOUBLE", "operator clock: median plain iteration",
                                          "us", since=7, default=None)
    clock_clocked_us: float | None = column("DOUBLE", "operator clock: median clocked "
                                                      "iteration", "us", since=7, default=None)
    clock_inside_us: float | None = column("DOUBLE", "operator clock: time inside top-level "
                                                     "operators", "us", since=7, default=None)
    clock_outside_us: float | None = column("DOUBLE", "operator clock: time outside them",
                                            "us", since=7, default=None)
    clock_operators: float | None = column("DOUBLE", "top-level operators per iteration",
                                           "calls", since=7, default=None)
    clock_observed: float | None = column("DOUBLE", "operators the clock observed", "calls",
                                          since=7, default=None)
    clock: dict[str, Any] | None = column("JSON", "the clock's raw rounds", since=7,
                                          default=None)
    clock_note: str | None = column("VARCHAR", "why there is no clock reading", since=7,
                                    default=None)
    clock_callback_outside_us: float | None = column(
        "DOUBLE", "the clock's own cost outside each top-level operator (a lower bound)",
        "us", since=9, default=None)
    plain_before_median_us: float | None = column(
        "DOUBLE", "median plain iteration just before the profiler (same worker)", "us",
        since=12, default=None)
    plain_after_median_us: float | None = column(
        "DOUBLE", "median plain iteration just after the profiler (same worker)", "us",
        since=12, default=None)
    overhead_note: str | None = column(
        "VARCHAR", "why profiler_overhead is not reported (the plain iterations drifted)",
        since=12, default=None)
    overhead_samples_us: Mapping[str, Any] | None = column(
        "JSON", "the iterations the overhead comes from: plain_before, profiled, plain_after",
        "us", since=12, default=None)


# How far the plain iterations' medians before and after the profiler may disagree (larger
# over smaller, minus 1) before the machine is taken to have drifted under the profile: then
# no overhead is reported, since the profiled iterations' share of the drift is unknown.
PLAIN_DRIFT_TOLERANCE = 0.10


def plain_drift(before_us: float | None, after_us: float | None) -> float:
    """How far the plain median after the profiler lies from the one before it: the larger
    over the smaller, minus 1 (NaN when either is missing or not positive)."""
    try:
        before, after = float(before_us), float(after_us)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return math.nan
    if not (before > 0 and after > 0):
        return math.nan
    return max(before, after) / min(before, after) - 1.0


def profiler_overhead_of(profiled_us: float, plain_us: float, before_us: float | None,
                         after_us: float | None) -> tuple[float, str | None]:
    """(overhead, why it is NaN): the profiled median over the plain median of the same
    worker, minus 1, unless the plain medians before and after the profiler (when both are
    known) disagree by more than ``PLAIN_DRIFT_TOLERANCE``."""
    drift = plain_drift(before_us, after_us)
    if drift > PLAIN_DRIFT_TOLERANCE:
        return math.nan, (f"the plain iterations drifted {drift:.0%} across the profiler "
                          f"(median {before_us:.4g} us before, {after_us:.4g} us after; "
                          f"tolerance {PLAIN_DRIFT_TOLERANCE:.0%})")
    try:
        profiled, plain = float(profiled_us), float(plain_us)
    except (TypeError, ValueError):
        return math.nan, "no plain or profiled median"
    if not (plain > 0) or math.isnan(profiled):
        return math.nan, "no plain or profiled median"
    return profiled / plain - 1.0, None


@dataclass(frozen=True)
class ProfileRecord:
    """What the operators collector returns."""

    operators: pd.DataFrame
    """Columns of :class:`OperatorTime`."""
    profile: Profile

    def rows(self) -> Iterator[tuple[type, Any]]:
        yield OperatorTime, self.operators
        yield type(self.profile), self.profile


OPERATORS = table("operators", OperatorTime, key=point_key_columns(),
                  meaning="top-level operators by model part, per iteration")
PROFILES = table("profiles", Profile, key=point_key_columns(),
                 primary_key=("run_id", "point_key"),
                 meaning="per operator-profile point: wall, operator and uncovered time")
