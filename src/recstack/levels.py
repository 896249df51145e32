"""The levels of the stack a point can measure, with the version of each one's method.

A level is what is measured (``timing``: the systems level; ``operators``: the software
level; ``hardware``: top-down and misses; ``serving``: a deployment under load); its collector (:mod:`recstack.collect`) is the
code that measures it, in a worker. A level's ``method_version`` enters every point's key
and is stored with it: change it whenever the collector's method changes what its numbers
mean, so that results of the two methods are never mixed without saying so.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Level:
    name: str
    method_version: int
    measures: str


LEVELS: dict[str, Level] = {level.name: level for level in (
    # 2: a point's batches form the working set of its cache state (cold by default).
    Level("timing", 2, "latency and throughput (the systems level)"),
    # 2: cold working sets; the profiler's overhead from the same worker's plain iterations.
    Level("operators", 2, "operator and model-part breakdown (the software level)"),
    # 2: cold working sets.
    Level("hardware", 2, "top-down fractions, IPC and misses (the hardware level)"),
    Level("serving", 1, "latency-bounded throughput under LoadGen's load (beyond the paper)"),
)}
LEVEL_NAMES: tuple[str, ...] = tuple(LEVELS)


@dataclass(frozen=True)
class LevelOptions:
    """What a level's collector needs beyond the point and the timing settings; decided
    once per plan."""

    hardware_mode: str | None = None
    """``measured`` or ``simulated`` when the plan has hardware points."""
    hierarchy: str = "host"
    """The simulated cache hierarchy (preset name) for simulated hardware points."""
    no_multiplex: bool = False
    """Measured hardware points: one loop per small event group instead of multiplexing."""
    trace_dir: str | None = None
    """Where operator-profile points keep a Chrome trace (None: no trace)."""
    llc_bytes: int | None = None
    """The last-level cache cold working sets are sized against (None: this machine's,
    read where the point runs)."""
