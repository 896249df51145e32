"""The roofline of each point: how close a measured latency is to what the machine allows.

For a spec and a batch size, :func:`recstack.footprint.stage_work` gives each stage's FLOPs and
bytes; this module turns them into a lower bound on the stage's time with the machine's
measured ceilings (:mod:`recstack.collect.ceilings`):

- compute time = each matrix product's FLOPs / the GEMM ceiling at that layer's shape (else the
  same layer at the largest measured ``M`` below it, else the large-GEMM ceiling) + other
  FLOPs (sum pooling) / the large-GEMM ceiling;
- memory time = gathered rows / a random-gather bandwidth + weights and activations / the
  triad bandwidth, except the weights of layers whose product was measured at its own shape
  (that measurement read them, as the model does, and is already the compute time).
  Gathers are bounded table by table: the rows a batch reads for the first time move at the
  ``gather_table`` ceiling of a table of that size and row width and of that run length
  (tables of the largest measured size not above it, runs of the shortest measured length not
  below the batch's distinct rows from the table: bandwidth falls as tables grow and rises
  with the run, so both err fast); rows the batch reads again (the expected repeats of its
  query distribution, from :func:`recstack.inputs.expected_distinct_rows`) move at the
  fastest gather measured at that row width. A lower bound takes the favourable case:
  whatever fits in the last-level cache (all of a model's tables; the rows of every batch the
  timing loop cycles through; all of its dense weights; a stage's activations) is assumed to
  be there and moves at the cached bandwidths;
- a stage's bound = max(compute, memory); the point's (sequential) bound = the sum over stages;
  efficiency = bound / measured median latency (1 = as fast as the ceilings allow).

Per-operator dispatch cost is not in the bound (it depends on the backend); the table gives
``dispatch_floor_ms`` (operator calls x the dispatch ceiling) where an operator profile of the
same configuration exists.

Framework overhead (time outside any operator), from a run's timing point and its operator
profile: the profiler inflates small-batch iterations (46-208% at batch 1 on the 2-core VM), so
the unprofiled median latency ``T`` is the reference, and the operators' time ``O`` comes from
the profiled run. The profiler's added time per iteration ``D`` (profiled minus unprofiled
median, measured in the profile point itself) lands partly inside operators (their inclusive
time covers the recording of nested operators) and partly between them. At least ``S`` of it
lands between them: the scopes the profiler records that are not operators (the iteration's
and each model part's), each at the added cost of an empty scope measured in the same worker
(``profiles.profiler_outside_us``; 0 for profiles stored before schema 6). So the true
operator time lies in ``[O - D + S, O]`` and the overhead share in
``[(T - O) / T, (T - max(O - D + S, 0)) / T]`` (clipped to [0, 1]): ``overhead_share_low`` and
``overhead_share_high``. When ``O - D`` exceeds ``T`` by more than 10%, the profile and the
timing did not run alike and both shares are NaN (not zero).

That bracket is wide at small batch: the profiler's added time is as large as the iteration.
Where the profile point also carries an operator clock reading (schema 7; CPU, not compiled:
:mod:`recstack.collect.opclock`), the shares come from it instead (``overhead_basis`` says
which): the plain iteration ``P``, and in alternated clocked rounds the time inside top-level
operators ``I`` and outside them ``X = C - I``, all measured in the same worker on the same
batches. The clock's callbacks (``C - P`` in all, 0.1 to 0.35 us per operator) land partly
inside and partly outside the top-level operators, so the plain iteration's time outside
operators lies in ``[P - I, X - n k]``, where ``n`` top-level operators each cost the clock at
least ``k`` outside themselves (``profiles.clock_callback_outside_us``, measured in the
worker by :meth:`recstack.collect.opclock.OperatorClock.calibrate`; 0 for profiles stored
before schema 9): the shares are ``(P - I) / P`` and ``(X - n k) / P`` (clipped).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from recstack.errors import RecstackError
from recstack.collect.ceilings import CACHE_LINE_BYTES, parse_table_gather_shape
from recstack.footprint import Gemm, StageWork, footprint, stage_work, table_gathers
from recstack.inputs import QuerySpec, expected_distinct_rows
from recstack.specs import ModelSpec, spec_from_config

STAGE_COLUMNS = ["stage", "flops", "bytes", "gathered_bytes", "weight_bytes",
                 "activation_bytes", "compute_ms", "memory_ms", "bound_ms", "limit"]
ROOFLINE_COLUMNS = [
    "run_id", "platform_id", "model", "model_type", "row_scale", "batch_size", "device",
    "threads", "backend", "measured_ms", "p5_ms", "p95_ms", "bound_ms", "efficiency", "flops",
    "bytes", "operational_intensity", "attained_gflops", "attained_gbps", "limiting_stage",
    "limit", "compute_ms", "memory_ms", "cycled_rows_bytes", "rows_resident", "operator_ms",
    "operator_calls", "dispatch_floor_ms",
    "overhead_share_low", "overhead_share_high", "overhead_basis", "ceilings_set",
    "ceilings_offset_minutes", "build_seconds", "compile_seconds",
    "peak_memory_growth_bytes",
    "model_bytes", "embedding_bytes"]
# How far the operators' time net of the profiler's cost may exceed the unprofiled latency
# (run-to-run noise) before the profile and the timing are taken as inconsistent.
INCONSISTENT_MARGIN = 0.1
REQUIRED_KINDS = ("cache", "dispatch", "triad_dram", "triad_cached", "gather_dram",
                  "gather_cached", "gemm_large")


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
        self._gemm: dict[tuple[int, int], list[tuple[int, float]]] = {}
        # Per row size: (table bytes, ids per table per call or None, GB/s).
        self._tables: dict[int, list[tuple[int, float, float]]] = {}
        for (kind, shape), value in self._values.items():
            if kind == "gemm":
                m, k, n = (int(part) for part in shape.split("x"))
                self._gemm.setdefault((k, n), []).append((m, value))
            elif kind == "gather_table" and (parsed := parse_table_gather_shape(shape)):
                row, table, run = parsed
                # A shape stored before run lengths were measured stands for every run.
                self._tables.setdefault(row, []).append(
                    (table, math.inf if run is None else float(run), value))
        for measured in (*self._gemm.values(), *self._tables.values()):
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
        return self._one("gemm_large")

    def triad_gbps(self, resident: bool) -> float:
        return self._one("triad_cached" if resident else "triad_dram")

    def gather_gbps(self, row_bytes: int, resident: bool) -> float:
        """Gather bandwidth at ``row_bytes`` (else at the nearest measured row size)."""
        kind = "gather_cached" if resident else "gather_dram"
        rows = {int(s.split()[1]): v for (k, s), v in self._values.items() if k == kind}
        return rows[_nearest(rows, row_bytes)]

    def fastest_gather_gbps(self, row_bytes: int) -> float:
        """The fastest gather measured at ``row_bytes`` (nearest measured row size): what a
        row read again, or a row already in the cache, can reach."""
        rates = [self.gather_gbps(row_bytes, resident=True)]
        if self._tables:
            rates += [rate for _, _, rate in self._tables[_nearest(self._tables, row_bytes)]]
        return max(rates)

    def table_gather_gbps(self, row_bytes: int, table_bytes: int,
                          ids: float = math.inf) -> float:
        """First-read gather bandwidth of ``ids`` distinct rows per call from tables of
        ``table_bytes``: among the ``gather_table`` ceilings at the nearest measured row size,
        those of the largest measured table not above that size, and of those the shortest
        measured run not below ``ids`` (else the longest measured): both roundings err fast,
        as bandwidth falls with the table's size and rises with the run's length. The fastest
        gather when every measured table is larger; the DRAM gather ceiling when no table
        sizes were measured (ceilings stored before they were)."""
        if not self._tables:
            return self.gather_gbps(row_bytes, resident=False)
        measured = self._tables[_nearest(self._tables, row_bytes)]
        sizes = [size for size, _, _ in measured if size <= table_bytes]
        if not sizes:
            return self.fastest_gather_gbps(row_bytes)
        runs = [(run, rate) for size, run, rate in measured if size == sizes[-1]]
        longer = [rate for run, rate in runs if run >= ids]
        return longer[0] if longer else runs[-1][1]

    def gemm_measured(self, gemm: Gemm) -> bool:
        """Whether a layer's product was measured at exactly its shape."""
        return gemm.linear and any(m == gemm.m for m, _ in self._gemm.get((gemm.k, gemm.n), []))

    def gemm_gflops(self, gemm: Gemm) -> float:
        """The GEMM ceiling at the product's shape; else that layer at the largest measured
        ``M`` not above it (throughput grows with ``M``); else the large GEMM's."""
        if gemm.linear:
            below = [v for m, v in self._gemm.get((gemm.k, gemm.n), []) if m <= gemm.m]
            if below:
                return below[-1]
        return self.peak_gflops


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
    it ended, negative when before it started. A machine's bandwidths drift (by up to 28%
    within minutes on the 2-core VM), so a run is best judged against ceilings measured
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


# ---- bounds ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class GatherBound:
    """The embedding gathers' lower-bound time of one batch and what it assumed."""

    seconds: float
    cycled_rows_bytes: float
    """Cache lines of the distinct rows read over every batch the timing loop cycles
    through (all tables), in bytes."""
    rows_resident: bool
    """Whether those rows (or all tables) fit in the LLC, so every read was taken as cached."""


def gather_bound(spec: ModelSpec, batch_size: int, ceilings: Ceilings,
                 query: QuerySpec | None = None, cycled_batches: int = 1) -> GatherBound:
    """Lower-bound time of one batch's embedding gathers (see the module docstring).

    ``query`` is the distribution the ids were drawn from (default uniform);
    ``cycled_batches`` how many distinct batches the timing loop went round (rows of the
    others can still be cached when a batch comes round again)."""
    query = query or QuerySpec()
    gathers = table_gathers(spec, batch_size)
    cycled = sum(expected_distinct_rows(query, g.rows, g.draws * cycled_batches)
                 * max(g.row_bytes, CACHE_LINE_BYTES) for g in gathers)
    resident = (cycled <= ceilings.llc_bytes
                or footprint(spec).embedding_bytes <= ceilings.llc_bytes)
    seconds = 0.0
    for g in gathers:
        fastest = ceilings.fastest_gather_gbps(g.row_bytes) * 1e9
        if resident:
            seconds += g.draws * g.row_bytes / fastest
            continue
        first = expected_distinct_rows(query, g.rows, g.draws)
        rate = ceilings.table_gather_gbps(g.row_bytes, g.table_bytes, first)
        seconds += first * g.row_bytes / (rate * 1e9)
        seconds += (g.draws - first) * g.row_bytes / fastest
    return GatherBound(seconds, cycled, resident)


def _stage_times(stage: StageWork, ceilings: Ceilings, gather_seconds: float,
                 weights_resident: bool) -> tuple[float, float]:
    """(compute, memory) seconds of a stage at the ceilings; ``gather_seconds`` is the time
    of its gathered rows (:func:`gather_bound`, for the embedding stage)."""
    compute = sum(g.flops / (ceilings.gemm_gflops(g) * 1e9) for g in stage.gemms)
    compute += stage.other_flops / (ceilings.peak_gflops * 1e9)
    memory = gather_seconds
    # A layer measured at its own shape moved its weights inside that measurement (the
    # ceiling calls F.linear on the same weights again and again, as a model does batch after
    # batch): its time already bounds their reading, and at batch 1 it reads them faster than
    # the triad ceilings do (on the 2-core VM the "cached" triad, a quarter of a reported
    # 480 MiB L3, streams at DRAM speed). Only the other weights count here.
    covered = sum(g.weight_bytes for g in stage.gemms if ceilings.gemm_measured(g))
    weights = max(0.0, stage.weight_bytes - covered)
    memory += weights / (ceilings.triad_gbps(weights_resident) * 1e9)
    activations_resident = stage.activation_bytes <= ceilings.llc_bytes
    memory += stage.activation_bytes / (ceilings.triad_gbps(activations_resident) * 1e9)
    return compute, memory


def stage_bounds(spec: ModelSpec, batch_size: int, ceilings: Ceilings,
                 query: QuerySpec | None = None, cycled_batches: int = 1
                 ) -> tuple[pd.DataFrame, GatherBound]:
    """Each stage's work and lower-bound time for one batch, and the gathers' bound. Columns
    STAGE_COLUMNS (times in ms; ``limit`` is ``compute`` or ``memory``, whichever bounds the
    stage). ``query`` and ``cycled_batches`` as in :func:`gather_bound`."""
    size = footprint(spec)
    weights_resident = size.dense_bytes <= ceilings.llc_bytes
    gathers = gather_bound(spec, batch_size, ceilings, query, cycled_batches)
    rows = []
    for stage in stage_work(spec, batch_size):
        gather_seconds = gathers.seconds if stage.gathered else 0.0
        compute, memory = _stage_times(stage, ceilings, gather_seconds, weights_resident)
        rows.append({"stage": stage.stage, "flops": stage.flops, "bytes": stage.bytes,
                     "gathered_bytes": stage.gathered_bytes, "weight_bytes": stage.weight_bytes,
                     "activation_bytes": stage.activation_bytes, "compute_ms": compute * 1e3,
                     "memory_ms": memory * 1e3, "bound_ms": max(compute, memory) * 1e3,
                     "limit": "compute" if compute >= memory else "memory"})
    return pd.DataFrame(rows, columns=STAGE_COLUMNS), gathers


def point_bound(spec: ModelSpec, batch_size: int, ceilings: Ceilings,
                query: QuerySpec | None = None, cycled_batches: int = 1) -> dict[str, object]:
    """The sequential bound of one batch and its totals: ``bound_ms`` (sum over stages),
    ``flops``, ``bytes``, ``operational_intensity`` (FLOPs per byte), ``compute_ms`` and
    ``memory_ms`` (sums), the ``limiting_stage`` (largest bound) and its ``limit``,
    ``cycled_rows_bytes`` and ``rows_resident`` (:class:`GatherBound`)."""
    stages, gathers = stage_bounds(spec, batch_size, ceilings, query, cycled_batches)
    top = stages.loc[stages.bound_ms.idxmax()]
    flops, moved = float(stages.flops.sum()), float(stages.bytes.sum())
    return {"bound_ms": float(stages.bound_ms.sum()), "flops": flops, "bytes": moved,
            "operational_intensity": flops / moved if moved else math.nan,
            "compute_ms": float(stages.compute_ms.sum()),
            "memory_ms": float(stages.memory_ms.sum()),
            "limiting_stage": str(top.stage), "limit": str(top.limit),
            "cycled_rows_bytes": gathers.cycled_rows_bytes,
            "rows_resident": gathers.rows_resident}


def overhead_shares(measured_ms: float, operator_ms: float, profiler_added_ms: float,
                    profiler_outside_ms: float = 0.0) -> tuple[float, float]:
    """(low, high) framework-overhead share of the latency (see the module docstring).
    ``profiler_outside_ms``: a lower bound on the profiler's added time that lands outside
    operators (0 when unknown); it narrows the high end."""
    if not measured_ms > 0 or operator_ms != operator_ms:
        return math.nan, math.nan
    added = max(0.0, profiler_added_ms) if profiler_added_ms == profiler_added_ms else 0.0
    if operator_ms - added > measured_ms * (1.0 + INCONSISTENT_MARGIN):
        # Operators alone, net of all the profiler's added time, take longer than the whole
        # unprofiled iteration: the two points did not run alike (e.g. the profiled
        # iterations met colder caches). No share can be read from them.
        return math.nan, math.nan
    outside = (max(0.0, profiler_outside_ms)
               if profiler_outside_ms == profiler_outside_ms else 0.0)
    low = (measured_ms - operator_ms) / measured_ms
    # Operators took at least O - (D - outside): of the profiler's added time D, at least
    # `outside` was spent between operators, so at most D - outside inflated them.
    operators_at_least = min(max(operator_ms - added + min(outside, added), 0.0), operator_ms)
    high = (measured_ms - operators_at_least) / measured_ms
    return float(np.clip(low, 0.0, 1.0)), float(np.clip(high, 0.0, 1.0))


def clocked_overhead_shares(plain_us: float, inside_us: float, outside_us: float,
                            operators: float = 0.0, callback_outside_us: float = 0.0
                            ) -> tuple[float, float]:
    """(low, high) framework-overhead share from an operator clock reading: the plain
    iteration ``plain_us``, and in clocked iterations the time inside top-level operators
    ``inside_us`` and outside them ``outside_us``, less what the clock is known to cost
    outside each of the ``operators`` top-level operators at least (``callback_outside_us``;
    NaN or missing counts as 0: the wider bound). See the module docstring. NaN when the
    reading is missing or the plain iteration is not positive."""
    values = (plain_us, inside_us, outside_us)
    if any(value != value for value in values) or not plain_us > 0:
        return math.nan, math.nan
    known_cost = operators * callback_outside_us
    if known_cost != known_cost:
        known_cost = 0.0
    low = (plain_us - inside_us) / plain_us
    high = (outside_us - known_cost) / plain_us
    return float(np.clip(low, 0.0, 1.0)), float(np.clip(max(high, low), 0.0, 1.0))


# ---- joined with a run's measurements ----------------------------------------------------------


def load_points(store: object, run_id: str) -> pd.DataFrame:
    """The run's measured CPU timing points with their spec, statistics, build figures and,
    where the run profiled the same configuration, its operator time and calls."""
    return store.query("""
        SELECT pt.run_id, r.platform_id, pt.model, pt.model_type, pt.spec, pt.query,
               pt.row_scale, pt.batch_size, pt.device, pt.threads, pt.backend, t.median_ms,
               t.p5_ms, t.p95_ms, pt.distinct_batches,
               pt.build_seconds, pt.compile_seconds, pt.peak_memory_growth_bytes,
               prof.operator_us, prof.calls, prof.profiled_median_us, prof.unprofiled_median_us,
               prof.profiler_outside_us, prof.clock_plain_us, prof.clock_inside_us,
               prof.clock_outside_us, prof.clock_operators, prof.clock_callback_outside_us
        FROM points pt JOIN timing t USING (run_id, point_key) JOIN runs r USING (run_id)
        LEFT JOIN (SELECT p_pt.run_id, p_pt.config_key, p.operator_us, p.profiled_median_us,
                          p.unprofiled_median_us, p.profiler_outside_us, p.clock_plain_us,
                          p.clock_inside_us, p.clock_outside_us, p.clock_operators,
                          p.clock_callback_outside_us,
                          (SELECT sum(o.calls) FROM operators o WHERE o.run_id = p.run_id
                           AND o.point_key = p.point_key) AS calls
                   FROM points p_pt JOIN profiles p USING (run_id, point_key)
                   WHERE p_pt.status = 'ok') prof
               ON prof.run_id = pt.run_id AND prof.config_key = pt.config_key
        WHERE pt.run_id = ? AND pt.status = 'ok' AND pt.collector = 'timing'
              AND pt.device = 'cpu'
        ORDER BY pt.model, pt.threads, pt.backend, pt.batch_size
    """, [run_id])


def roofline_table(store: object, run_id: str, ceilings: pd.DataFrame | None = None
                   ) -> pd.DataFrame:
    """Every measured CPU timing point of ``run_id`` against its roofline bound.

    ``ceilings`` are rows of the ``ceilings`` table (default: the store's). Columns
    ROOFLINE_COLUMNS: times in ms; ``efficiency`` = bound / measured median;
    ``operational_intensity`` = FLOPs / bytes of one batch; ``attained_gflops`` and
    ``attained_gbps`` = the batch's FLOPs and bytes over the measured median; ``operator_ms``,
    ``operator_calls``, ``dispatch_floor_ms`` and the overhead shares are NaN without an
    operator profile of the configuration in the run. Points whose platform and thread count
    have no ceilings get NaN bounds; raises RecstackError when no point has any, or when the
    run has no CPU timing points. Of several stored sets of ceilings, each point is set
    against the one measured nearest to the run (:func:`nearest_ceiling_sets`;
    ``ceilings_set`` and ``ceilings_offset_minutes`` say which and how far).
    """
    points = load_points(store, run_id)
    # A point stored without its spec (written by hand, not by a sweep) has no work to bound.
    points = points[points.spec.notna()]
    if points.empty:
        raise RecstackError(f"run: {run_id!r} has no measured CPU timing points in "
                            f"{getattr(store, 'path', 'the store')}")
    ceilings = store.load_ceilings(every_set=True) if ceilings is None else ceilings
    span = store.run_span(run_id) if hasattr(store, "run_span") else (None, None)
    ceilings, chosen = nearest_ceiling_sets(ceilings, *span)
    chosen = chosen.set_index(["platform_id", "threads"])
    found: dict[tuple[str, int], Ceilings | None] = {}
    rows = []
    for point in points.itertuples(index=False):
        key = (str(point.platform_id), int(point.threads))
        if key not in found:
            found[key] = ceilings_for(ceilings, *key) if not ceilings.empty else None
        row = _row(point, found[key])
        if key in chosen.index:
            row["ceilings_set"] = chosen.set_id[key]
            row["ceilings_offset_minutes"] = chosen.offset_minutes[key]
        rows.append(row)
    if all(c is None for c in found.values()):
        wanted = ", ".join(f"--threads {t}" for _, t in sorted(found))
        raise RecstackError(f"ceilings: none stored for the platform and thread counts of run "
                            f"{run_id} ({wanted}); run `recstack ceilings` there first")
    from recstack.analysis.systems import order_models

    return order_models(pd.DataFrame(rows, columns=ROOFLINE_COLUMNS))


def _row(point: object, ceilings: Ceilings | None) -> dict[str, object]:
    spec = spec_from_config(json.loads(point.spec))
    size = footprint(spec)
    measured = float(point.median_ms)
    row: dict[str, object] = {
        "run_id": point.run_id, "platform_id": point.platform_id, "model": point.model,
        "model_type": point.model_type, "row_scale": point.row_scale,
        "batch_size": int(point.batch_size), "device": point.device,
        "threads": int(point.threads), "backend": point.backend, "measured_ms": measured,
        "p5_ms": point.p5_ms, "p95_ms": point.p95_ms, "build_seconds": point.build_seconds,
        "compile_seconds": _number(point.compile_seconds),
        "peak_memory_growth_bytes": point.peak_memory_growth_bytes,
        "model_bytes": size.model_bytes, "embedding_bytes": size.embedding_bytes}
    if ceilings is not None:
        query = QuerySpec(**json.loads(point.query)) if point.query else QuerySpec()
        distinct = _number(point.distinct_batches)
        cycled = int(distinct) if distinct >= 1 else 1
        bound = point_bound(spec, int(point.batch_size), ceilings, query, cycled)
        row.update(bound)
        row["efficiency"] = bound["bound_ms"] / measured
        row["attained_gflops"] = bound["flops"] / (measured * 1e-3) / 1e9
        row["attained_gbps"] = bound["bytes"] / (measured * 1e-3) / 1e9
    operator_us = _number(point.operator_us)
    operator_ms = operator_us / 1e3
    row["operator_ms"] = operator_ms
    row["operator_calls"] = _number(point.calls)
    if ceilings is not None:
        row["dispatch_floor_ms"] = row["operator_calls"] * ceilings.dispatch_us / 1e3
    clocked = clocked_overhead_shares(_number(point.clock_plain_us),
                                      _number(point.clock_inside_us),
                                      _number(point.clock_outside_us),
                                      _number(point.clock_operators),
                                      _number(point.clock_callback_outside_us))
    if clocked[0] == clocked[0]:
        row["overhead_share_low"], row["overhead_share_high"] = clocked
        row["overhead_basis"] = "operator clock"
        return row
    added_ms = (_number(point.profiled_median_us) - _number(point.unprofiled_median_us)) / 1e3
    row["overhead_share_low"], row["overhead_share_high"] = overhead_shares(
        measured, operator_ms, added_ms, _number(point.profiler_outside_us) / 1e3)
    row["overhead_basis"] = ("profiler" if row["overhead_share_low"] == row["overhead_share_low"]
                             else None)
    return row


def _number(value: object) -> float:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return math.nan
    return number
