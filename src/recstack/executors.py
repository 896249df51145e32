"""Executors: where and how a point's collector runs. Planning, the collectors and the store
do not know which executor runs a point: :class:`LocalExecutor` runs each in a fresh process
here; a cluster's (:class:`recstack.fleet.RayExecutor`) is one more class with the same
``measure`` method, and says where each point ran (:meth:`measure_where`), how many points it
takes at once (``parallelism``) and how often a point whose node was lost is tried again
(``retries``).

A collector is ``collector(point, settings, options) -> Record`` (one per level, in
:mod:`recstack.collect`); it raises when the point fails, and the run stores that failure.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from recstack.errors import RecstackError
from recstack.levels import LevelOptions
from recstack.points import Point
from recstack.records import Record
from recstack.working_set import CycledSet

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


class PointLost(RecstackError):
    """The point's node or the process holding it died: not the point's failure, so the run
    stores it as failed and may measure it again elsewhere (``Executor.retries``)."""


@dataclass(frozen=True)
class Machine:
    """A machine that measured a point: its platform (``platform_info``) and, on a cluster,
    its node."""

    platform_id: str
    description: str
    info: dict[str, Any]
    node: str | None = None


@dataclass(frozen=True)
class Measured:
    """A point's record and where it was measured: ``machine`` None means the machine the
    run runs on; ``cycled`` is the working set as sized against the measuring machine's
    cache (None: size it here); ``began``/``ended`` when its worker ran (None: the driver's
    clock around the call)."""

    record: Record
    machine: Machine | None = None
    cycled: CycledSet | None = None
    began: datetime | None = None
    ended: datetime | None = None


def measure_where(executor: Executor, point: Point, settings: Any,
                  options: LevelOptions) -> Measured:
    """The executor's record of ``point`` with where it was measured, for any executor."""
    placed = getattr(executor, "measure_where", None)
    if placed is not None:
        return placed(point, settings, options)
    return Measured(executor.measure(point, settings, options))


@dataclass
class LocalExecutor:
    """Every point in a fresh process on this machine (:func:`recstack.worker.
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
