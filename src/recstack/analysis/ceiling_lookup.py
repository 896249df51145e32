"""The machine's measured ceilings as the roofline reads them: lookups over the stored
ceilings of one platform and thread count (:class:`Ceilings`), and which of several stored
sets judges a run (:func:`nearest_ceiling_sets`: the one measured nearest to it).

The ceilings are measured by ``recstack ceilings``; what each kind means is in
``docs/performance.md``. A product runs in its ``Gemm.dtype`` and a table's rows are gathered
in its stored precision: each is looked up among the ceilings measured in that precision
(kinds ``gemm_bf16``, ``gather_table_int8``, ...). Where a set holds none for a precision (a
set stored before they were measured, or fp16 and bf16 tables, whose gathers are not
measured), the fp32 ceilings stand in, and :meth:`Ceilings.gemm_precision` and
:meth:`Ceilings.gather_precision` say so: the roofline labels such a point's bound.
"""

from __future__ import annotations

import math

import pandas as pd

from recstack.ceiling_shapes import parse_table_gather_shape, split_precision_kind
from recstack.errors import RecstackError
from recstack.batch_work import Gemm

REQUIRED_KINDS = ("cache", "dispatch", "triad_dram", "triad_cached", "gather_dram",
                  "gather_cached", "gemm_large")
REFERENCE = "fp32"


class Ceilings:
    """Lookups over the stored ceilings of one platform and thread count (rows of the
    ``ceilings`` table)."""

    def __init__(self, frame: pd.DataFrame):
        kinds = set(frame.kind) if not frame.empty else set()
        missing = [k for k in REQUIRED_KINDS if k not in kinds]
        if missing:
            raise RecstackError(f"ceilings: {', '.join(missing)} not measured; run "
                                "`recstack ceilings` on this machine")
        if frame[["platform_id", "threads"]].drop_duplicates().shape[0] != 1:
            raise ValueError("Ceilings: expected the rows of one platform and thread count")
        self.frame = frame
        self._values = {(str(k), str(s)): float(v)
                        for k, s, v in zip(frame["kind"], frame["shape"], frame["value"])}
        # Per precision: the large GEMM; per (k, n): (M, GFLOP/s).
        self._large: dict[str, float] = {}
        self._gemm: dict[str, dict[tuple[int, int], list[tuple[int, float]]]] = {}
        # Per precision and (cached, DRAM) gather kind: per row size, GB/s.
        self._gathers: dict[tuple[str, str], dict[int, float]] = {}
        # Per precision and row size: (table bytes, ids per table per call or inf, GB/s).
        self._tables: dict[str, dict[int, list[tuple[int, float, float]]]] = {}
        for (kind, shape), value in self._values.items():
            base, precision = split_precision_kind(kind)
            if base == "gemm_large":
                self._large[precision] = value
            elif base == "gemm":
                m, k, n = (int(part) for part in shape.split("x"))
                self._gemm.setdefault(precision, {}).setdefault((k, n), []).append((m, value))
            elif base in ("gather_cached", "gather_dram"):
                row = int(shape.split()[1])
                self._gathers.setdefault((precision, base), {})[row] = value
            elif base == "gather_table" and (parsed := parse_table_gather_shape(shape)):
                row, table, run = parsed
                # A shape without a run length stands for every run.
                self._tables.setdefault(precision, {}).setdefault(row, []).append(
                    (table, math.inf if run is None else float(run), value))
        for measured in (*(m for by_shape in self._gemm.values() for m in by_shape.values()),
                         *(m for by_row in self._tables.values() for m in by_row.values())):
            measured.sort()

    def _one(self, kind: str) -> float:
        return next(v for (k, _), v in self._values.items() if k == kind)

    @property
    def llc_bytes(self) -> float:
        return self._one("cache")

    @property
    def dispatch_us(self) -> float:
        return self._one("dispatch")

    @property
    def peak_gflops(self) -> float:
        return self._large[REFERENCE]

    def triad_gbps(self, resident: bool) -> float:
        return self._one("triad_cached" if resident else "triad_dram")

    # ---- which precision's ceilings stand for a precision ---------------------------------

    def gemm_precision(self, dtype: str) -> str:
        """The precision whose GEMM ceilings bound products in ``dtype``: ``dtype`` where its
        large GEMM was measured, else fp32."""
        return dtype if dtype in self._large else REFERENCE

    def gather_precision(self, stored: str) -> str:
        """The precision whose gather ceilings bound rows stored in ``stored``: ``stored``
        where its gathers were measured, else fp32 (read at the stored row size)."""
        measured = all((stored, kind) in self._gathers for kind in ("gather_cached",
                                                                      "gather_dram"))
        return stored if measured else REFERENCE

    # ---- gathers -----------------------------------------------------------------------------

    def gather_gbps(self, row_bytes: int, resident: bool, stored: str = REFERENCE) -> float:
        """Gather bandwidth at ``row_bytes`` (else at the nearest measured row size) of rows
        stored in ``stored``."""
        kind = "gather_cached" if resident else "gather_dram"
        rows = self._gathers[(self.gather_precision(stored), kind)]
        return rows[_nearest(rows, row_bytes)]

    def fastest_gather_gbps(self, row_bytes: int, stored: str = REFERENCE) -> float:
        """The fastest gather measured at ``row_bytes`` (nearest measured row size) of rows
        stored in ``stored``: what a row read again, or a row already in the cache, can
        reach."""
        rates = [self.gather_gbps(row_bytes, True, stored)]
        tables = self._tables.get(self.gather_precision(stored), {})
        if tables:
            rates += [rate for _, _, rate in tables[_nearest(tables, row_bytes)]]
        return max(rates)

    def table_gather_gbps(self, row_bytes: int, table_bytes: int,
                          ids: float = math.inf, stored: str = REFERENCE) -> float:
        """First-read gather bandwidth of ``ids`` distinct rows per call from tables of
        ``table_bytes`` stored in ``stored``: among the ``gather_table`` ceilings at the
        nearest measured row size, those of the largest measured table not above that size,
        and of those the shortest measured run not below ``ids`` (else the longest measured):
        both roundings err fast, as bandwidth falls with the table's size and rises with the
        run's length. The fastest gather when every measured table is larger; the DRAM gather
        ceiling when no table sizes are stored."""
        tables = self._tables.get(self.gather_precision(stored), {})
        if not tables:
            return self.gather_gbps(row_bytes, False, stored)
        measured = tables[_nearest(tables, row_bytes)]
        sizes = [size for size, _, _ in measured if size <= table_bytes]
        if not sizes:
            return self.fastest_gather_gbps(row_bytes, stored)
        runs = [(run, rate) for size, run, rate in measured if size == sizes[-1]]
        longer = [rate for run, rate in runs if run >= ids]
        return longer[0] if longer else runs[-1][1]

    # ---- products ----------------------------------------------------------------------------

    def _layer(self, gemm: Gemm) -> list[tuple[int, float]]:
        shapes = self._gemm.get(self.gemm_precision(gemm.dtype), {})
        return shapes.get((gemm.k, gemm.n), []) if gemm.linear else []

    def gemm_measured(self, gemm: Gemm) -> bool:
        """Whether a layer's product was measured at exactly its shape (in the precision
        whose ceilings bound it)."""
        return any(m == gemm.m for m, _ in self._layer(gemm))

    def gemm_gflops(self, gemm: Gemm) -> float:
        """The GEMM ceiling at the product's shape and precision; else that layer at the
        largest measured ``M`` not above it (throughput grows with ``M``); else the large
        GEMM's (of the precision whose ceilings bound it)."""
        below = [v for m, v in self._layer(gemm) if m <= gemm.m]
        return below[-1] if below else self._large[self.gemm_precision(gemm.dtype)]


def _nearest(measured: dict[int, object], row_bytes: int) -> int:
    """The measured row size closest to ``row_bytes`` (by ratio; the smaller on a tie)."""
    return min(measured, key=lambda r: (abs(math.log(r / row_bytes)), r))


CEILING_SET_COLUMNS = ["platform_id", "threads", "set_id", "measured_from", "measured_to",
                       "offset_minutes", "sets_stored"]


def nearest_ceiling_sets(ceilings: pd.DataFrame, start: object = None, end: object = None
                         ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Of the stored ceiling sets (``set_id``; frames without it are one set per platform
    and thread count), the one measured nearest to the span ``[start, end]`` of a run, per
    platform and thread count; the newest when the span is unknown or on ties.

    Returns (the chosen sets' rows, one row per choice with CEILING_SET_COLUMNS):
    ``offset_minutes`` is 0 when the set was measured during the run, positive when after
    it ended, negative when before it started. A machine's bandwidths drift (by a quarter
    within minutes on a shared host), so a run is best judged against ceilings measured
    beside it, and the report says how far apart they were."""
    if ceilings.empty:
        return ceilings, pd.DataFrame(columns=CEILING_SET_COLUMNS)
    frame = ceilings if "set_id" in ceilings else ceilings.assign(set_id="stored")
    frame = frame.assign(set_id=frame.set_id.fillna("stored"))
    times = pd.to_datetime(frame.measured_at, utc=True)
    start = pd.Timestamp(start) if start is not None else None
    end = pd.Timestamp(end) if end is not None else start
    chosen, rows = [], []
    for (platform, threads), group in frame.assign(_at=times).groupby(
            ["platform_id", "threads"], sort=True):
        spans = group.groupby("set_id")._at.agg(["min", "max"])
        if start is None:
            offsets = pd.Series(0.0, index=spans.index)
        else:
            after = (spans["min"] - end).dt.total_seconds().clip(lower=0)
            before = (start - spans["max"]).dt.total_seconds().clip(lower=0)
            offsets = (after - before) / 60.0
        # Nearest first; on a tie (or an unknown span) the newest.
        order = sorted(spans.index, key=lambda s: (abs(offsets[s]), -spans["max"][s].value))
        best = order[0]
        chosen.append(group[group.set_id == best].drop(columns="_at"))
        rows.append({"platform_id": platform, "threads": threads, "set_id": best,
                     "measured_from": spans["min"][best], "measured_to": spans["max"][best],
                     "offset_minutes": float(offsets[best]) if start is not None else math.nan,
                     "sets_stored": len(spans)})
    return pd.concat(chosen, ignore_index=True), pd.DataFrame(rows, columns=CEILING_SET_COLUMNS)


def ceilings_for(frame: pd.DataFrame, platform_id: str, threads: int) -> Ceilings | None:
    """The ceilings of one platform and thread count from many, or None if not measured."""
    rows = frame[(frame.platform_id == platform_id) & (frame.threads == threads)]
    return Ceilings(rows) if not rows.empty else None
