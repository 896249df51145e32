"""Top-down fractions from perf's metric columns and from pmu-tools' ``toplev``.

``toplev -x,`` (pmu-tools) prints ``Timestamp`` (optional), ``CPUs`` (optional), ``Area``,
``Value``, ``Unit``, ``Description``, ``Sample``, ``Stddev``, ``Multiplex``, ``Bottleneck``,
``Idle``; nodes are named ``Frontend_Bound``, ``Frontend_Bound.Fetch_Latency``, ... and
measured in ``% Slots`` (or ``% Stalls``/``% Clocks`` below level 2). perf's own top-down
metrics arrive as metric columns of :class:`~recstack.collect.perf_parse.CounterReading`.
Both are read into one set of keys (:data:`TOPDOWN_LEVEL1`, :data:`TOPDOWN_LEVEL2`).
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable
from dataclasses import dataclass

from recstack.collect.perf_parse import CounterReading, number_or_none

TOPDOWN_LEVEL1: tuple[str, ...] = ("retiring", "bad_speculation", "frontend_bound", "backend_bound")
TOPDOWN_LEVEL2: tuple[str, ...] = (
    "fetch_latency",
    "fetch_bandwidth",
    "branch_mispredicts",
    "machine_clears",
    "memory_bound",
    "core_bound",
    "light_operations",  # Ice Lake+ TMA: children of Retiring
    "heavy_operations",
    "base",  # older TMA (pre Ice Lake): children of Retiring
    "microcode_sequencer",
)
"""Keys of :func:`topdown_from_readings`. Level 2 depends on the TMA version; only what perf
printed is returned."""


@dataclass(frozen=True)
class TopdownNode:
    """One top-down node from toplev.

    ``value`` is a fraction (toplev prints percent; divided by 100 here). ``multiplex`` is
    toplev's Multiplex column as printed: the percent of time the node's events were
    scheduled (100 = not multiplexed), None if empty.
    """

    area: str
    level: int
    value: float | None
    unit: str
    multiplex: float | None
    bottleneck: bool
    timestamp: str | None = None
    cpus: str | None = None


_TOPLEV_TAIL = ("Area", "Value", "Unit", "Description", "Sample", "Stddev", "Multiplex",
                "Bottleneck", "Idle")


def parse_toplev_csv(text: str, sep: str = ",") -> list[TopdownNode]:
    """Top-down nodes from ``toplev -x,`` output.

    Uses the header row when there is one (``Area,Value,...``); without it, the columns are
    taken by position (Timestamp and CPUs present when the row has one or two more fields
    than the 9 documented ones). Rows whose unit is not a percentage (toplev's ``Info.*``
    metrics, ``MUX``) are not nodes and are skipped.
    """
    nodes: list[TopdownNode] = []
    header: dict[str, int] | None = None
    for row in csv.reader(io.StringIO(text), delimiter=sep):
        if not row or not any(f.strip() for f in row):
            continue
        if row[0].lstrip().startswith("#"):
            continue
        names = [f.strip() for f in row]
        if "Area" in names and "Value" in names:
            header = {name: i for i, name in enumerate(names)}
            continue
        if header is not None:
            index = header
        else:
            # Idle (and Bottleneck) are missing in older toplev versions
            extra = min(max(len(row) - len(_TOPLEV_TAIL), 0), 2)
            index = {name: extra + i for i, name in enumerate(_TOPLEV_TAIL)}
            if extra == 2:
                index["Timestamp"], index["CPUs"] = 0, 1
            elif extra == 1:
                first = row[0].strip()
                timestamp = first == "SUMMARY" or number_or_none(first) is not None
                index["Timestamp" if timestamp else "CPUs"] = 0

        def col(name: str) -> str:
            i = index.get(name)
            return row[i].strip() if i is not None and i < len(row) else ""

        area = col("Area")
        unit = col("Unit")
        # toplev appends a marker for nodes below their threshold ("?" / "<") to the unit
        unit = re.sub(r"\s+[?<]$", "", unit)
        if not area or not unit.startswith("%") or area == "MUX" or area.startswith("Info."):
            continue
        value = number_or_none(col("Value"))
        bottleneck = col("Bottleneck")
        nodes.append(
            TopdownNode(
                area=area,
                level=area.count(".") + 1,
                value=None if value is None else value / 100.0,
                unit=unit,
                multiplex=number_or_none(col("Multiplex")),
                bottleneck=bool(bottleneck) and bottleneck.lower() not in ("0", "no", "false"),
                timestamp=col("Timestamp") or None,
                cpus=col("CPUs") or None,
            )
        )
    return nodes


def topdown_from_toplev(nodes: Iterable[TopdownNode]) -> dict[str, float] | None:
    """Level-1 and level-2 fractions keyed like :func:`topdown_from_readings`.

    Level-2 keys are the child name in lower case (``Backend_Bound.Memory_Bound`` ->
    ``memory_bound``). Repeated nodes (intervals, CPUs) are averaged. None if no level-1 or
    level-2 node has a value.
    """
    values: dict[str, list[float]] = {}
    for node in nodes:
        if node.value is None or node.level > 2:
            continue
        key = _topdown_key(node.area.split(".")[-1])
        if key is None:
            continue
        values.setdefault(key, []).append(node.value)
    return _average(values)


_TOPDOWN_ALIASES = {
    "branch_mispredict": "branch_mispredicts",  # perf 5.x --topdown on Ice Lake
    "frontend_latency": "fetch_latency",  # early TMA / toplev naming
    "frontend_bandwidth": "fetch_bandwidth",
}
_TOPDOWN_KEYS = frozenset(TOPDOWN_LEVEL1 + TOPDOWN_LEVEL2)


def _topdown_key(name: str) -> str | None:
    s = name.strip().lstrip("%").strip().lower()
    s = re.sub(r"[\s\-]+", "_", s)
    if s.startswith("tma_"):
        s = s[4:]
    s = _TOPDOWN_ALIASES.get(s, s)
    return s if s in _TOPDOWN_KEYS else None


def _average(values: dict[str, list[float]]) -> dict[str, float] | None:
    if not values:
        return None
    ordered = [k for k in TOPDOWN_LEVEL1 + TOPDOWN_LEVEL2 if k in values]
    return {k: sum(values[k]) / len(values[k]) for k in ordered}


def topdown_from_readings(readings: Iterable[CounterReading]) -> dict[str, float] | None:
    """Top-down fractions (0..1) from perf's metric columns; None if perf printed none.

    Two naming families are recognised in the metric unit, both printed in percent:

    * metric groups (``-M TopdownL1``/``TopdownL2``, and ``--topdown`` since perf 6.3):
      ``%  tma_frontend_bound`` (perf 6.x), ``%  Frontend_Bound`` (perf 5.x JSON metrics);
    * perf's built-in ``--topdown`` (perf 4.8 to 6.2): ``frontend bound``, ``bad
      speculation``, ``retiring``, ``backend bound`` and on Ice Lake level 2 ``fetch
      latency``, ``branch mispredict``, ``memory bound``, ``heavy operations``, ...

    Level 3 and info metrics are ignored. Repeated metrics (intervals, CPUs, hybrid PMUs)
    are averaged, which is exact only when they cover equal slot counts.
    """
    values: dict[str, list[float]] = {}
    for r in readings:
        if r.metric_value is None or not r.metric_unit:
            continue
        key = _topdown_key(r.metric_unit)
        if key is None:
            continue
        values.setdefault(key, []).append(r.metric_value / 100.0)
    return _average(values)
