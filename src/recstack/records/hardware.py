"""The hardware level's record: top-down fractions, IPC and miss rates of one point, with its
source (measured or simulated). A value that was not measured is NULL, never 0."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from recstack.records.declare import column, point_key_columns, table

RATES: tuple[str, ...] = ("ipc", "l1i_mpki", "l1d_mpki", "llc_mpki", "branch_mpki",
                          "dtlb_mpki", "itlb_mpki")
TOPDOWN_LEVEL1: tuple[str, ...] = ("retiring", "bad_speculation", "frontend_bound",
                                   "backend_bound")


@dataclass(frozen=True, kw_only=True)
class Hardware:
    """What the hardware level found for one point."""

    source: str = column("VARCHAR", "measured (perf stat) or simulated (valgrind ...): shown "
                                    "with every figure", since=3)
    hierarchy: str | None = column("VARCHAR", "the simulated cache hierarchy", since=3,
                                   default=None)
    instructions: float | None = column("DOUBLE", "instructions per iteration", "instructions",
                                        since=3, default=None)
    ipc: float | None = column("DOUBLE", "instructions per cycle", since=3, default=None)
    l1i_mpki: float | None = column("DOUBLE", "L1 instruction misses", "per kilo-instruction",
                                    since=3, default=None)
    l1d_mpki: float | None = column("DOUBLE", "L1 data misses", "per kilo-instruction",
                                    since=3, default=None)
    llc_mpki: float | None = column("DOUBLE", "last-level cache misses", "per kilo-instruction",
                                    since=3, default=None)
    branch_mpki: float | None = column("DOUBLE", "branch mispredictions",
                                       "per kilo-instruction", since=3, default=None)
    dtlb_mpki: float | None = column("DOUBLE", "data TLB misses", "per kilo-instruction",
                                     since=3, default=None)
    itlb_mpki: float | None = column("DOUBLE", "instruction TLB misses",
                                     "per kilo-instruction", since=3, default=None)
    retiring: float | None = column("DOUBLE", "top-down: slots retiring", "fraction", since=3,
                                    default=None)
    bad_speculation: float | None = column("DOUBLE", "top-down: slots lost to bad "
                                                     "speculation", "fraction", since=3,
                                           default=None)
    frontend_bound: float | None = column("DOUBLE", "top-down: slots the frontend left empty",
                                          "fraction", since=3, default=None)
    backend_bound: float | None = column("DOUBLE", "top-down: slots stalled in the backend",
                                         "fraction", since=3, default=None)
    topdown: dict[str, float] | None = column("JSON", "every top-down fraction (level 2 where "
                                                      "measured)", since=3, default=None)
    multiplexing: float | None = column("DOUBLE", "smallest share of time an event was counted "
                                                  "(1: none)", since=3, default=None)
    caveats: list[str] = column("JSON", "what the reader must know about these values",
                                since=3, default=())
    raw: dict[str, Any] | None = column("JSON", "the raw counts or simulation totals", since=3,
                                        default=None)


@dataclass(frozen=True)
class HardwareRecord:
    """What the hardware collector returns."""

    hardware: Hardware

    def rows(self) -> Iterator[tuple[type, Any]]:
        yield type(self.hardware), self.hardware


HARDWARE = table("hardware", Hardware, key=point_key_columns(),
                 primary_key=("run_id", "point_key"),
                 meaning="per hardware point: top-down fractions, IPC and miss rates")
