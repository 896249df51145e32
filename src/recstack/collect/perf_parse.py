"""What ``perf stat`` printed: its counter rows, the rates they give, and whether a PMU
counts at all.

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

Percent running below 100 means the kernel multiplexed the event (perf then prints a count
scaled up from the time it ran); recstack reports that instead of hiding it, because
top-down values differ with and without multiplexing. Nothing here prints; problems are
:class:`~recstack.errors.RecstackError` with one-line messages.
"""

from __future__ import annotations

import csv
import json as _json
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from recstack.collect.perf_events import normalize_event
from recstack.errors import RecstackError

Status = Literal["counted", "not_supported", "not_counted"]

_NOT_SUPPORTED = "<not supported>"
_NOT_COUNTED = "<not counted>"


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


def number_or_none(text: object) -> float | None:
    """A finite number from a field perf or toplev printed (a trailing ``%`` allowed), None
    for anything else (empty, ``<not counted>``, NaN)."""
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
    value = number_or_none(text)
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
        value = number_or_none(raw)
        if value is None:
            raise RecstackError(f"perf stat row has a value that is not a number: {line.strip()!r}")
        status = "counted"
    pcnt = number_or_none(percent)
    # perf prints metric fields (e.g. 0.000000 in JSON) even where it computed nothing;
    # a metric without a unit, or of an event that was not counted, is no metric.
    mval = number_or_none(metric_value) if (munit and status == "counted") else None
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
        interval = number_or_none(obj.get("interval"))
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
# Derived quantities
# --------------------------------------------------------------------------------------


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
