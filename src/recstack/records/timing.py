"""The timing level's record: every timed iteration, and the statistics derived from them."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pandas as pd

from recstack.records.declare import column, point_key_columns, table
from recstack.records.points import Build


@dataclass(frozen=True, kw_only=True)
class Sample:
    """One timed iteration."""

    iteration: int = column("INTEGER", "its position in the timed loop")
    latency_ns: int = column("BIGINT", "end-to-end latency of the batch", "ns")
    copy_ns: int | None = column("BIGINT", "host-to-device copy, included in the latency "
                                           "(CUDA only)", "ns", default=None)


@dataclass(frozen=True, kw_only=True)
class TimingStats:
    """Statistics derived from a point's raw samples."""

    iterations: int = column("INTEGER", "timed iterations")
    median_ms: float = column("DOUBLE", "median latency", "ms")
    p5_ms: float = column("DOUBLE", "5th percentile latency", "ms")
    p95_ms: float = column("DOUBLE", "95th percentile latency", "ms")
    p99_ms: float = column("DOUBLE", "99th percentile latency", "ms")
    mean_ms: float = column("DOUBLE", "mean latency", "ms")
    std_ms: float = column("DOUBLE", "standard deviation of the latency", "ms")
    cv: float = column("DOUBLE", "coefficient of variation")
    relative_spread: float = column("DOUBLE", "(p95 - p5) / median: the middle 90%'s width")
    throughput_per_s: float = column("DOUBLE", "samples per second at the median latency",
                                     "samples/s")
    copy_median_ms: float | None = column("DOUBLE", "median host-to-device copy (CUDA)", "ms")
    unstable: bool = column("BOOLEAN", "relative spread over the run's threshold")
    warning: str | None = column("VARCHAR", "why it is unstable")


@dataclass(frozen=True)
class TimingRecord:
    """What the timing collector returns: how the point was built, every sample, and their
    statistics."""

    samples: pd.DataFrame
    """Columns of :class:`Sample`."""
    stats: TimingStats
    build: Build | None = None

    def rows(self) -> Iterator[tuple[type, Any]]:
        if self.build is not None:
            yield type(self.build), self.build
        yield Sample, self.samples
        yield type(self.stats), self.stats


SAMPLES = table("samples", Sample, key=point_key_columns(),
                meaning="every timed iteration's latency")
TIMING = table("timing", TimingStats, key=point_key_columns(),
               primary_key=("run_id", "point_key"),
               meaning="statistics derived from the samples")
