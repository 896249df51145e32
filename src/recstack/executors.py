"""Executors: where and how a point's collector runs. Planning, the collectors and the store
do not know which executor runs a point; another executor (a cluster's) is one more class
with the same ``measure`` method.

A collector is ``collector(point, settings, options) -> Record`` (one per level, in
:mod:`recstack.collect`); it raises when the point fails, and the run stores that failure.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from recstack.levels import LevelOptions
from recstack.points import Point
from recstack.records import Record

Collector = Callable[..., Record]


def collector_for(level: str) -> Collector:
    """The collector of ``level`` (imported when asked: a collector module imports torch)."""
    if level == "timing":
        from recstack.collect.timing import collect_timing

        return collect_timing
    if level == "operators":
        from recstack.collect.operators import collect_profile

        return collect_profile
    if level == "hardware":
        from recstack.collect.hardware import collect_hardware

        return collect_hardware
    if level == "serving":
        from recstack.collect.serving import collect_serving

        return collect_serving
    raise ValueError(f"no collector for level {level!r}")


class Executor(Protocol):
    """Runs one point's collector somewhere and returns its record (or raises)."""

    def measure(self, point: Point, settings: Any, options: LevelOptions) -> Record: ...


@dataclass
class LocalExecutor:
    """Every point in a fresh spawned process on this machine (:func:`recstack.worker.
    run_isolated`): nothing one point leaves in memory or caches reaches the next, and a
    worker killed by the OOM killer is a failed point, not a dead sweep."""

    timeout_s: float | None = None
    """A point still running after this long is killed and stored as failed."""
    collector: Collector | None = None
    """Replaces every level's collector (tests inject failures with it)."""

    def measure(self, point: Point, settings: Any, options: LevelOptions) -> Record:
        from recstack.worker import run_isolated

        function = self.collector or collector_for(point.level)
        return run_isolated(function, point, settings, options, timeout_s=self.timeout_s)
