"""Hardware counters through ``perf stat``: event lists, command lines, and parsers.

The hardware level of recstack (Intel's top-down method) reads CPU counters with
``perf stat`` where the CPU exposes them. Everything here is pure (parsing text, building
argv lists) except :class:`PerfControl`, which talks to a running ``perf stat`` through its
control fifos. Nothing here prints; problems are :class:`~recstack.errors.RecstackError`
with one-line messages.

Formats read (as perf documents them):

* ``perf stat -x,`` (CSV): ``value,unit,event,run time,percent running,metric value,metric
  unit``, with an optional leading interval column (``-I``). Unsupported events print
  ``<not supported>`` in the value field, events that never ran ``<not counted>``. A metric
  that belongs to the previous event but has its own line ("metric-only" line) has empty
  value, unit, event, run time and percent fields. ``-o FILE`` adds a ``# started on ...``
  comment line.
* ``perf stat -j`` (JSON, perf 6.0+): one object per line with ``counter-value``, ``unit``,
  ``event``, ``event-runtime``, ``pcnt-running``, ``metric-value``, ``metric-unit`` (and
  ``interval`` with ``-I``). ``counter-value`` is a string (``"<not supported>"`` too);
  ``metric-value`` is a number in perf 6.1 (a quoted number is accepted too); metric-only
  objects carry only ``metric-value`` and ``metric-unit``.
* pmu-tools ``toplev -x,``: ``Timestamp`` (optional), ``CPUs`` (optional), ``Area``,
  ``Value``, ``Unit``, ``Description``, ``Sample``, ``Stddev``, ``Multiplex``,
  ``Bottleneck``, ``Idle``; nodes are named ``Frontend_Bound``,
  ``Frontend_Bound.Fetch_Latency``, ... and measured in ``% Slots`` (or ``% Stalls``/
  ``% Clocks`` below level 2).

Percent running below 100 means the kernel multiplexed the event (perf then prints a count
scaled up from the time it ran); recstack reports that instead of hiding it, because
top-down values differ with and without multiplexing.
"""

from __future__ import annotations

import csv
import errno
import io
import json as _json
import math
import os
import re
import select
import stat as _stat
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from recstack.errors import RecstackError

# --------------------------------------------------------------------------------------
# What to measure (data)
# --------------------------------------------------------------------------------------

GENERIC_EVENTS: tuple[str, ...] = (
    # perf's generic (architecture-independent) hardware and cache events; the kernel maps
    # them to model-specific events. Ordered so that each miss event sits next to its base
    # event: chunking this tuple by 4 (see ``perf_command(no_multiplex=True)``) keeps every
    # pair in one run. Not every CPU has every one (e.g. many AMD parts lack ``LLC-loads``);
    # those print ``<not supported>``.
    "instructions",
    "cycles",
    "branches",
    "branch-misses",
    "L1-dcache-loads",
    "L1-dcache-load-misses",
    "LLC-loads",
    "LLC-load-misses",
    "dTLB-loads",
    "dTLB-load-misses",
    "iTLB-load-misses",
    "L1-icache-load-misses",
)
"""Generic perf events behind :func:`derived_rates`."""

OPTIONAL_L2_EVENTS: tuple[str, ...] = ("l2_rqsts.references", "l2_rqsts.miss")
"""L2 events. perf has no generic L2 event; these are Intel core event names (Skylake and
later, from perf's pmu-events JSON). Other CPUs name L2 differently and perf rejects an
unknown name with "event syntax error", so they are never requested by default."""

TOPDOWN_METRIC_GROUPS: dict[int, str] = {1: "TopdownL1", 2: "TopdownL2"}
"""Top-down as perf metric groups (``-M TopdownL1``, ``-M TopdownL2``). They come from Intel's
TMA metrics in perf's pmu-events JSON: metric names ``tma_retiring``, ``tma_frontend_bound``,
... (the ``tma_`` names arrived with the TMA 4.x update of perf's Intel metrics, around
perf 6.0; perf 5.x shipped the same groups with names like ``Frontend_Bound``). Available for
Intel Core/Xeon models that perf has metrics for; ``perf list metricgroups`` shows them. AMD
Zen 4 uses other groups (``PipelineL1``/``PipelineL2``), not handled here. In a VM without a
PMU the events behind them print ``<not supported>`` and no metric is printed."""

TOPDOWN_FLAG: str = "--topdown"
"""The older way: ``perf stat --topdown`` (perf 4.8+). Before Ice Lake it computes level 1
from the ``topdown-*`` events in perf itself and requires system-wide mode (``-a``); on Ice
Lake and later it uses the PERF_METRICS fixed counter and ``--td-level 2`` adds level 2
(perf 5.12+); since perf 6.3 it is built on the ``TopdownL1`` metric group. ``--topdown``
implies ``--metric-only`` unless told otherwise, so :func:`perf_command` adds
``--no-metric-only`` to keep the row format the parsers read."""

TOPDOWN_EVENTS: dict[str, tuple[str, ...]] = {
    # Kernel topdown events (the raw material of the metrics above). Listed for reference
    # and for callers that want the raw slot counts; the metric groups are the normal way.
    # Sandy Bridge .. Skylake/Cascade Lake (Linux 4.8+): level 1 from 5 events, needs -a.
    "pre_icelake": (
        "topdown-total-slots",
        "topdown-slots-issued",
        "topdown-slots-retired",
        "topdown-fetch-bubbles",
        "topdown-recovery-bubbles",
    ),
    # Ice Lake and later: the "slots" fixed counter plus PERF_METRICS (Linux 5.9+ roughly);
    # these must be scheduled as one group led by "slots".
    "icelake": (
        "slots",
        "topdown-retiring",
        "topdown-bad-spec",
        "topdown-fe-bound",
        "topdown-be-bound",
    ),
    # Sapphire Rapids and later add level 2 in PERF_METRICS.
    "sapphire_rapids_level2": (
        "topdown-heavy-ops",
        "topdown-br-mispredict",
        "topdown-fetch-lat",
        "topdown-mem-bound",
    ),
}

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

MAX_EVENTS_PER_RUN: int = 4
"""Assumption behind ``no_multiplex``: 4 programmable counters per logical CPU (Intel cores
since Sandy Bridge with Hyper-Threading on; 8 with it off; AMD Zen has 6). Fixed counters
(instructions, cycles) would allow a little more, and the NMI watchdog can take one away; 4
generic events per run is the conservative choice that schedules without multiplexing on
those CPUs."""

Status = Literal["counted", "not_supported", "not_counted"]

_NOT_SUPPORTED = "<not supported>"
_NOT_COUNTED = "<not counted>"


# --------------------------------------------------------------------------------------
# Records
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CounterReading:
    """One row of ``perf stat`` output.

    ``value`` is None unless the event was counted (never 0 for something not measured).
    A metric-only row (a further metric of the event above it) has ``event == ""`` and
    ``value is None``; its status is "counted" because perf only prints metrics it computed.
    ``metric_value`` is None when perf printed no metric (empty metric unit).
    """

    event: str
    value: float | None
    unit: str
    run_time_ns: int | None
    percent_running: float | None
    metric_value: float | None
    metric_unit: str | None
    status: Status
    multiplexed: bool
    interval: float | None = None
    """Seconds since start, with ``perf stat -I``; None otherwise."""

    @property
    def is_metric_only(self) -> bool:
        return self.event == "" and self.value is None


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


# --------------------------------------------------------------------------------------
# Small parsing helpers
# --------------------------------------------------------------------------------------


def _float_or_none(text: object) -> float | None:
    if text is None:
        return None
    if isinstance(text, bool):
        return None
    if isinstance(text, (int, float)):
        value = float(text)
        return value if math.isfinite(value) else None
    s = str(text).strip().rstrip("%").strip()
    if not s:
        return None
    try:
        value = float(s)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _int_or_none(text: object) -> int | None:
    value = _float_or_none(text)
    return None if value is None else int(round(value))


def _make_reading(
    *,
    value_field: object,
    unit: object,
    event: object,
    run_time: object,
    percent: object,
    metric_value: object,
    metric_unit: object,
    interval: float | None,
    line: str,
) -> CounterReading:
    raw = "" if value_field is None else str(value_field).strip()
    event_s = "" if event is None else str(event).strip()
    unit_s = "" if unit is None else str(unit).strip()
    munit = "" if metric_unit is None else str(metric_unit).strip()
    if raw.startswith(_NOT_SUPPORTED):
        status: Status = "not_supported"
        value = None
    elif raw.startswith(_NOT_COUNTED):
        status = "not_counted"
        value = None
    elif raw == "":
        if not event_s and munit:
            status, value = "counted", None  # metric-only line
        else:
            raise RecstackError(f"perf stat row has no value: {line.strip()!r}")
    else:
        value = _float_or_none(raw)
        if value is None:
            raise RecstackError(f"perf stat row has a value that is not a number: {line.strip()!r}")
        status = "counted"
    pcnt = _float_or_none(percent)
    # perf prints metric fields (e.g. 0.000000 in JSON) even where it computed nothing;
    # a metric without a unit, or of an event that was not counted, is no metric.
    mval = _float_or_none(metric_value) if (munit and status == "counted") else None
    return CounterReading(
        event=event_s,
        value=value,
        unit=unit_s,
        run_time_ns=_int_or_none(run_time),
        percent_running=pcnt,
        metric_value=mval,
        metric_unit=munit if mval is not None else None,
        status=status,
        multiplexed=status == "counted" and value is not None and pcnt is not None and pcnt < 100.0,
        interval=interval,
    )


_TIME_RE = re.compile(r"^\s*\d+\.\d+\s*$")
_INT_RE = re.compile(r"^\s*\d+\s*$")


# --------------------------------------------------------------------------------------
# perf stat -x,
# --------------------------------------------------------------------------------------


def parse_perf_csv(text: str, sep: str = ",") -> list[CounterReading]:
    """Rows of ``perf stat -x<sep>`` output, in order.

    Comment lines (``#``), blank lines and perf's own messages ("Events enabled", lines with
    too few fields) are skipped. A leading interval column (``-I``) is recognised when the
    first field is a time and the row has 8 fields or more with a non-numeric fourth field
    (the event). A trailing empty field is tolerated.
    """
    readings: list[CounterReading] = []
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        fields = next(csv.reader([stripped], delimiter=sep, skipinitialspace=False))
        if len(fields) < 5:
            continue  # perf's own messages, not counter rows
        interval: float | None = None
        if (
            len(fields) >= 8
            and _TIME_RE.match(fields[0])
            and not _INT_RE.match(fields[3] or "0")
        ):
            interval = float(fields[0])
            fields = fields[1:]
        elif (
            len(fields) >= 8
            and _TIME_RE.match(fields[0])
            and all(not f.strip() for f in fields[1:6])
        ):
            # interval-prefixed metric-only line: time,,,,,,value,unit
            interval = float(fields[0])
            fields = fields[1:]
        while len(fields) > 7 and fields[-1].strip() == "":
            fields = fields[:-1]
        fields = fields + [""] * (7 - len(fields))
        value, unit, event, run_time, percent, mval, munit = fields[:7]
        readings.append(
            _make_reading(
                value_field=value,
                unit=unit,
                event=event,
                run_time=run_time,
                percent=percent,
                metric_value=mval,
                metric_unit=munit,
                interval=interval,
                line=line,
            )
        )
    return readings


# --------------------------------------------------------------------------------------
# perf stat -j
# --------------------------------------------------------------------------------------

_DECODER = _json.JSONDecoder()


def parse_perf_json(text: str) -> list[CounterReading]:
    """Objects of ``perf stat -j`` output, one per line, in order.

    Lines that are not JSON objects (perf's ``# started on`` header, "Events enabled", ...)
    are skipped; text after an object on the same line (perf can append a message there) is
    ignored.
    """
    readings: list[CounterReading] = []
    for line in text.splitlines():
        start = line.find("{")
        if start < 0:
            continue
        try:
            obj, _ = _DECODER.raw_decode(line, start)
        except ValueError:
            continue
        if not isinstance(obj, dict):
            continue
        if "counter-value" not in obj and "metric-unit" not in obj:
            continue
        interval = _float_or_none(obj.get("interval"))
        readings.append(
            _make_reading(
                value_field=obj.get("counter-value"),
                unit=obj.get("unit"),
                event=obj.get("event"),
                run_time=obj.get("event-runtime"),
                percent=obj.get("pcnt-running"),
                metric_value=obj.get("metric-value"),
                metric_unit=obj.get("metric-unit"),
                interval=interval,
                line=line,
            )
        )
    return readings


# --------------------------------------------------------------------------------------
# toplev -x,
# --------------------------------------------------------------------------------------

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
                timestamp = first == "SUMMARY" or _float_or_none(first) is not None
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
        value = _float_or_none(col("Value"))
        bottleneck = col("Bottleneck")
        nodes.append(
            TopdownNode(
                area=area,
                level=area.count(".") + 1,
                value=None if value is None else value / 100.0,
                unit=unit,
                multiplex=_float_or_none(col("Multiplex")),
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


# --------------------------------------------------------------------------------------
# Derived quantities
# --------------------------------------------------------------------------------------

_EVENT_ALIASES = {
    "cpu-cycles": "cycles",
    "branch-instructions": "branches",
    "l2_rqsts.miss": "l2-misses",
    "l2_rqsts.references": "l2-references",
}


def normalize_event(name: str) -> str:
    """Event name without PMU and modifiers, lower case: ``cpu_core/cycles/u`` and
    ``cycles:u`` -> ``cycles``; aliases mapped (``cpu-cycles`` -> ``cycles``)."""
    s = name.strip()
    m = re.match(r"^[\w.-]+/([^/]+)/[a-zA-Z]*$", s)
    if m:
        s = m.group(1).split(",")[0]
    s = s.split(":")[0].lower()
    return _EVENT_ALIASES.get(s, s)


def _counted_totals(readings: Iterable[CounterReading]) -> dict[str, float]:
    """Sum of counted values per normalized event (over intervals, CPUs, hybrid PMUs)."""
    totals: dict[str, float] = {}
    for r in readings:
        if r.status != "counted" or r.value is None or not r.event:
            continue
        key = normalize_event(r.event)
        totals[key] = totals.get(key, 0.0) + r.value
    return totals


def derived_rates(readings: Iterable[CounterReading]) -> dict[str, float | None]:
    """The usual rates from generic events (counts as perf printed them, i.e. already scaled
    for multiplexing). Each is None where an input was not counted or a denominator is 0.

    Keys: ``ipc``; misses per kilo-instruction ``l1d_mpki``, ``l1i_mpki``, ``l2_mpki``,
    ``llc_mpki``, ``dtlb_mpki``, ``itlb_mpki``, ``branch_mpki``; miss ratios
    ``branch_miss_rate``, ``l1d_miss_rate``, ``llc_miss_rate``, ``dtlb_miss_rate``.
    """
    t = _counted_totals(readings)

    def ratio(num: str, den: str, scale: float = 1.0) -> float | None:
        n, d = t.get(num), t.get(den)
        if n is None or d is None or d == 0:
            return None
        return n / d * scale

    return {
        "ipc": ratio("instructions", "cycles"),
        "l1d_mpki": ratio("l1-dcache-load-misses", "instructions", 1000.0),
        "l1i_mpki": ratio("l1-icache-load-misses", "instructions", 1000.0),
        "l2_mpki": ratio("l2-misses", "instructions", 1000.0),
        "llc_mpki": ratio("llc-load-misses", "instructions", 1000.0),
        "dtlb_mpki": ratio("dtlb-load-misses", "instructions", 1000.0),
        "itlb_mpki": ratio("itlb-load-misses", "instructions", 1000.0),
        "branch_mpki": ratio("branch-misses", "instructions", 1000.0),
        "branch_miss_rate": ratio("branch-misses", "branches"),
        "l1d_miss_rate": ratio("l1-dcache-load-misses", "l1-dcache-loads"),
        "llc_miss_rate": ratio("llc-load-misses", "llc-loads"),
        "dtlb_miss_rate": ratio("dtlb-load-misses", "dtlb-loads"),
    }


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


def multiplexing_share(readings: Iterable[CounterReading]) -> float | None:
    """Smallest share of time any counted event ran (1.0 = no multiplexing); None if no
    counted event reports its percent running."""
    shares = [
        r.percent_running / 100.0
        for r in readings
        if r.status == "counted" and r.value is not None and r.percent_running is not None
    ]
    return min(shares) if shares else None


# --------------------------------------------------------------------------------------
# Is there a PMU?
# --------------------------------------------------------------------------------------

_HUMAN_ROW = re.compile(
    r"^\s*(?P<value><not supported>|<not counted>|\d[\d.,'\u00a0\u202f]*)\s+(?P<rest>\S.*)$"
)

_SOFTWARE_EVENTS = frozenset({
    "task-clock", "cpu-clock", "context-switches", "cs", "cpu-migrations", "migrations",
    "page-faults", "faults", "minor-faults", "major-faults", "alignment-faults",
    "emulation-faults", "dummy", "duration_time", "user_time", "system_time",
})


def _human_rows(text: str) -> list[tuple[str, str, Status]]:
    """(event, value, status) from perf's default (human) output: ``VALUE [UNIT] EVENT
    [# metric] [(pcnt%)]``; the time summary lines are skipped."""
    rows: list[tuple[str, str, Status]] = []
    for line in text.splitlines():
        m = _HUMAN_ROW.match(line)
        if not m:
            continue
        tokens = [t for t in m.group("rest").split("#")[0].split() if not t.startswith("(")]
        if not tokens or "seconds" in tokens or len(tokens) > 2:
            continue
        value = m.group("value").strip()
        status: Status = ("not_supported" if value == _NOT_SUPPORTED else
                          "not_counted" if value == _NOT_COUNTED else "counted")
        rows.append((tokens[-1], value, status))
    return rows


def _is_hardware(event: str) -> bool:
    name = normalize_event(event)
    return bool(name) and name not in _SOFTWARE_EVENTS


def pmu_available(perf_stat_output: str) -> tuple[bool, str]:
    """Whether hardware counters work, judged from the output (stderr) of
    ``perf stat -e cycles true`` (human, ``-x,`` or ``-j`` format), with a one-line reason."""
    text = perf_stat_output or ""
    if not text.strip():
        return False, "perf printed nothing (is perf installed?)"
    low = text.lower()
    denied = ("access to performance monitoring", "no permission", "permission denied")
    if any(phrase in low for phrase in denied):
        return False, ("perf may not open counters here (permission: lower "
                       "kernel.perf_event_paranoid or run as root)")
    if "cannot find pmu" in low:
        return False, "no CPU PMU found (typical of a VM)"

    rows: list[tuple[str, str, Status]]
    if "performance counter stats" in low:
        rows = _human_rows(text)
    else:
        try:
            parsed = parse_perf_json(text) if "{" in text else parse_perf_csv(text)
        except RecstackError:
            parsed = []
        rows = [(r.event, "" if r.value is None else f"{r.value:g}", r.status) for r in parsed]
    rows = [r for r in rows if _is_hardware(r[0])]
    if not rows:
        first = next((line.strip() for line in text.splitlines() if line.strip()), "")
        return False, f"no hardware event in perf's output: {first[:120]}"
    counted = [r for r in rows if r[2] == "counted"]
    if counted:
        event, value, _ = counted[0]
        return True, f"{event}: counted {value}"
    event, _, status = rows[0]
    if status == "not_supported":
        return False, f"{event}: <not supported> (no PMU exposed: typical of a VM)"
    return False, f"{event}: <not counted> (the event never ran; PMU busy or unavailable)"


# --------------------------------------------------------------------------------------
# perf command lines
# --------------------------------------------------------------------------------------


def _bracketed(event: str) -> bool:
    """Commas are part of one event only inside ``pmu/.../`` or an ``{a,b}`` group."""
    if event.startswith("{") and event.endswith("}"):
        return True
    return bool(re.match(r"^[\w.-]+/.*/[a-zA-Z]*$", event))


def perf_command(
    command: Sequence[str] | None = None,
    *,
    pid: int | None = None,
    events: Sequence[str] = GENERIC_EVENTS,
    metric_groups: Sequence[str] = (),
    topdown_flag: bool = False,
    control_fifo: str | os.PathLike[str] | None = None,
    ack_fifo: str | os.PathLike[str] | None = None,
    output_path: str | os.PathLike[str] | None = None,
    json: bool = True,
    no_multiplex: bool = False,
    max_events_per_run: int = MAX_EVENTS_PER_RUN,
    perf: str = "perf",
) -> list[str] | list[list[str]]:
    """The argv of ``perf stat`` around a worker command (or attached to ``pid``).

    ``perf stat -j -o OUT --control fifo:CTL,ACK -D -1 -e a,b -M TopdownL1 -- command...``.
    With control fifos, counting starts disabled (``-D -1``) and the caller enables it around
    the measured loop (see :class:`PerfControl`; ``--control`` and ``-D -1`` arrived around
    perf 5.9/5.10).
    ``json=True`` needs perf 6.0+ for ``-j``; ``json=False`` gives ``-x,`` CSV.

    With ``no_multiplex=True`` the result is a list of argvs instead: events in chunks of at
    most ``max_events_per_run`` (see :data:`MAX_EVENTS_PER_RUN`), then one run per metric
    group and one for ``--topdown``, so the caller runs the measured loop once per argv. The
    runs after the first append to ``output_path`` (``--append``), so one file holds them all.

    Pure: runs nothing, checks nothing on disk.
    """
    if (command is None) == (pid is None):
        raise RecstackError("perf_command: give either a command or a pid, not both or neither")
    if command is not None:
        command = [str(c) for c in command]
        if not command:
            raise RecstackError("perf_command: the command to measure is empty")
    if pid is not None and (isinstance(pid, bool) or not isinstance(pid, int) or pid <= 0):
        raise RecstackError(f"perf_command: pid {pid!r} is not a positive integer")
    events = [str(e) for e in events]
    metric_groups = [str(g) for g in metric_groups]
    for e in events:
        if not e or any(c.isspace() for c in e) or ("," in e and not _bracketed(e)):
            raise RecstackError(f"perf_command: event {e!r} is not one perf event name")
    for g in metric_groups:
        if not g or any(c.isspace() for c in g):
            raise RecstackError(f"perf_command: metric group {g!r} is not one name")
    if not events and not metric_groups and not topdown_flag:
        raise RecstackError(
            "perf_command: nothing to measure (no events, metric groups or --topdown)")
    if (control_fifo is None) != (ack_fifo is None):
        raise RecstackError("perf_command: control_fifo and ack_fifo go together")
    per_run = max_events_per_run
    if isinstance(per_run, bool) or not isinstance(per_run, int) or per_run < 1:
        raise RecstackError(
            f"perf_command: max_events_per_run {per_run!r} must be an integer >= 1")

    def build(ev: Sequence[str], groups: Sequence[str], topdown: bool, append: bool) -> list[str]:
        argv = [perf, "stat"]
        argv += ["-j"] if json else ["-x,"]
        if output_path is not None:
            argv += ["-o", os.fspath(output_path)]
            if append:
                argv.append("--append")
        if control_fifo is not None:
            fifos = f"fifo:{os.fspath(control_fifo)},{os.fspath(ack_fifo)}"
            argv += ["--control", fifos, "-D", "-1"]
        if ev:
            argv += ["-e", ",".join(ev)]
        for g in groups:
            argv += ["-M", g]
        if topdown:
            argv += [TOPDOWN_FLAG, "--no-metric-only"]
        if pid is not None:
            argv += ["-p", str(pid)]
        else:
            argv += ["--", *command]
        return argv

    if not no_multiplex:
        return build(events, metric_groups, topdown_flag, append=False)

    runs: list[tuple[list[str], list[str], bool]] = []
    for i in range(0, len(events), per_run):
        runs.append((events[i:i + per_run], [], False))
    for g in metric_groups:
        runs.append(([], [g], False))
    if topdown_flag:
        runs.append(([], [], True))
    return [build(ev, groups, td, append=i > 0) for i, (ev, groups, td) in enumerate(runs)]


# --------------------------------------------------------------------------------------
# Control fifos
# --------------------------------------------------------------------------------------


class PerfControl:
    """Enable and disable a running ``perf stat --control fifo:CTL,ACK -D -1``.

    Both fifos are opened read-write and non-blocking (as perf opens them), so opening never
    waits for perf and a perf that is gone shows up as a missing ack, not a hang.
    ``enable()``/``disable()`` write ``enable\\n``/``disable\\n`` and wait up to ``timeout``
    seconds for perf's ``ack\\n`` (followed by a NUL byte in perf 6.1, which is skipped).
    """

    def __init__(self, control_fifo: str | os.PathLike[str], ack_fifo: str | os.PathLike[str],
                 timeout: float = 5.0):
        number = isinstance(timeout, (int, float)) and not isinstance(timeout, bool)
        if not (number and timeout > 0):
            raise RecstackError(f"PerfControl: timeout {timeout!r} must be a number of seconds > 0")
        self.control_fifo = os.fspath(control_fifo)
        self.ack_fifo = os.fspath(ack_fifo)
        self.timeout = float(timeout)
        self._ctl: int | None = None
        self._ack: int | None = None
        self._buffer = b""

    def open(self) -> PerfControl:
        if self._ctl is not None:
            return self
        for path in (self.control_fifo, self.ack_fifo):
            try:
                mode = os.stat(path).st_mode
            except OSError as exc:
                raise RecstackError(f"perf control fifo {path}: {exc.strerror or exc}") from exc
            if not _stat.S_ISFIFO(mode):
                raise RecstackError(
                    f"perf control fifo {path} is not a fifo (make it with os.mkfifo)")
        flags = os.O_RDWR | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
        try:
            self._ctl = os.open(self.control_fifo, flags)
            self._ack = os.open(self.ack_fifo, flags)
        except OSError as exc:
            self.close()
            raise RecstackError(f"cannot open perf control fifos: {exc.strerror or exc}") from exc
        return self

    def close(self) -> None:
        for name in ("_ctl", "_ack"):
            fd = getattr(self, name)
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass
                setattr(self, name, None)
        self._buffer = b""

    def __enter__(self) -> PerfControl:
        return self.open()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def enable(self) -> None:
        """Start counting; returns once perf acknowledged."""
        self._command("enable")

    def disable(self) -> None:
        """Stop counting; returns once perf acknowledged."""
        self._command("disable")

    def ping(self) -> None:
        """Check that perf is listening (recent perf, 6.1 included, acks ``ping``)."""
        self._command("ping")

    def _command(self, word: str) -> None:
        if self._ctl is None or self._ack is None:
            raise RecstackError("PerfControl is not open (use it as a context manager)")
        data = f"{word}\n".encode()
        try:
            written = os.write(self._ctl, data)
        except OSError as exc:
            if exc.errno == errno.EAGAIN:
                raise RecstackError(f"perf control fifo {self.control_fifo} is full: "
                                    "perf is not reading it") from exc
            raise RecstackError(f"cannot write {word!r} to {self.control_fifo}: "
                                f"{exc.strerror or exc}") from exc
        if written != len(data):
            raise RecstackError(f"short write of {word!r} to {self.control_fifo}")
        self._wait_ack(word)

    def _wait_ack(self, word: str) -> None:
        deadline = time.monotonic() + self.timeout
        while True:
            if b"\n" in self._buffer:
                line, self._buffer = self._buffer.split(b"\n", 1)
                # perf writes the C string "ack\n" including its NUL byte (seen with perf
                # 6.1), so the next line starts with b"\0"
                if line.strip(b"\0 \t\r") == b"ack":
                    return
                continue  # anything else is not ours; keep waiting for the ack
            left = deadline - time.monotonic()
            if left <= 0:
                raise RecstackError(
                    f"perf did not acknowledge {word!r} within {self.timeout:g} s "
                    f"on {self.ack_fifo}"
                )
            ready, _, _ = select.select([self._ack], [], [], left)
            if not ready:
                continue
            try:
                chunk = os.read(self._ack, 4096)
            except BlockingIOError:
                continue
            except OSError as exc:
                raise RecstackError(f"cannot read {self.ack_fifo}: {exc.strerror or exc}") from exc
            self._buffer += chunk
