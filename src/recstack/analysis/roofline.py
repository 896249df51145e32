"""The roofline of each point: how close a measured latency is to what the machine allows.

:func:`roofline_table` sets every measured CPU timing point of a run against its lower bound
at the measured ceilings of the machine that measured it (a run on a cluster spans several;
:mod:`recstack.analysis.roofline_bound`, with the ceilings of
:mod:`recstack.analysis.ceiling_lookup`: the stored set measured nearest to the run) and
brackets its framework overhead (:mod:`recstack.analysis.overhead_bracket`) where the run
profiled the same configuration. :func:`roofline_view` does so for the runs of a
report. The bound, the lookups and the bracket are re-exported here for existing callers.

Each point is bounded in its own precision (``embedding_precision``, ``dense_precision``;
points stored before schema 15 ran in fp32): its bytes, intensity and ceilings are that
precision's, ``ceiling_basis`` says which ceilings stood in where the stored set has none for
it, and ``memory_bound`` whether memory limits most of its bound (:func:`memory_bound_points`
selects those columns per point).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from recstack.analysis.ceiling_lookup import (CEILING_SET_COLUMNS, REQUIRED_KINDS, Ceilings,
                                              ceilings_for, nearest_ceiling_sets)
from recstack.analysis.overhead_bracket import (INCONSISTENT_MARGIN, clocked_overhead_shares,
                                                overhead_shares)
from recstack.analysis.roofline_bound import (MEMORY_BOUND_SHARE, STAGE_COLUMNS, GatherBound,
                                              ceiling_basis, gather_bound, point_bound,
                                              stage_bounds)
from recstack.analysis.select import STORED_BEFORE_CACHE_STATE
from recstack.errors import RecstackError
from recstack.footprint import footprint
from recstack.inputs import FILE_DISTRIBUTIONS, QuerySpec
from recstack.precision import REFERENCE, Precision
from recstack.specs import spec_from_config

__all__ = ["CEILING_SET_COLUMNS", "INCONSISTENT_MARGIN", "MEMORY_BOUND_COLUMNS",
           "MEMORY_BOUND_SHARE", "REQUIRED_KINDS", "ROOFLINE_COLUMNS", "STAGE_COLUMNS",
           "Ceilings", "GatherBound", "RooflineView", "ceiling_basis", "ceilings_for",
           "clocked_overhead_shares", "gather_bound", "load_points", "memory_bound_points",
           "nearest_ceiling_sets", "overhead_shares", "point_bound", "roofline_table",
           "roofline_view", "stage_bounds"]

ROOFLINE_COLUMNS = [
    "run_id", "platform_id", "model", "model_type", "row_scale", "batch_size", "device",
    "threads", "backend", "cache_state", "embedding_precision", "dense_precision",
    "measured_ms", "p5_ms", "p95_ms", "bound_ms", "efficiency", "flops",
    "bytes", "operational_intensity", "attained_gflops", "attained_gbps", "limiting_stage",
    "limit", "compute_ms", "memory_ms", "memory_share", "memory_bound", "cycled_rows_bytes",
    "rows_resident", "operator_ms", "operator_calls", "dispatch_floor_ms",
    "overhead_share_low", "overhead_share_high", "overhead_basis", "ceilings_set",
    "ceilings_offset_minutes", "ceiling_basis", "ceiling_fallback", "build_seconds",
    "compile_seconds", "peak_memory_growth_bytes",
    "model_bytes", "embedding_bytes"]
# What a precision report needs of each point: which it is, and whether memory bounds it.
MEMORY_BOUND_COLUMNS = [
    "run_id", "platform_id", "model", "batch_size", "device", "threads", "backend",
    "cache_state", "embedding_precision", "dense_precision", "bytes",
    "operational_intensity", "compute_ms", "memory_ms", "memory_share", "memory_bound",
    "ceiling_basis", "ceiling_fallback"]


def load_points(store: Any, run_id: str) -> pd.DataFrame:
    """The run's measured CPU timing points: every declared column of ``points`` and
    ``timing``, with ``platform_id`` the machine that measured the point (whose ceilings
    bound it: ``select.measuring_platform``), and where the run profiled the same
    configuration the columns of its ``profiles`` row (those not named alike in the tables
    before) and its operators' ``calls`` per iteration (NULL without a profile)."""
    from recstack.analysis.select import declared_names, measuring_platform

    point = ["run_id", "point_key", *declared_names(store, "points", ["platform_id"])]
    stats = declared_names(store, "timing", point)
    profile = declared_names(store, "profiles", [*point, *stats, "platform_id"])
    selected = ", ".join([*(_stored_before_precision(c) for c in point), measuring_platform(),
                          *(f"t.{c}" for c in stats), *(f"prof.{c}" for c in profile),
                          "prof.calls"])
    return store.query(f"""
        SELECT {selected}
        FROM points pt JOIN timing t USING (run_id, point_key) JOIN runs r USING (run_id)
        LEFT JOIN (SELECT p_pt.run_id AS profile_run_id, p_pt.config_key AS profile_config,
                          {", ".join(f"p.{c}" for c in profile)},
                          (SELECT sum(o.calls) FROM operators o WHERE o.run_id = p.run_id
                           AND o.point_key = p.point_key) AS calls
                   FROM points p_pt JOIN profiles p USING (run_id, point_key)
                   WHERE p_pt.status = 'ok') prof
               ON prof.profile_run_id = pt.run_id AND prof.profile_config = pt.config_key
        WHERE pt.run_id = ? AND pt.status = 'ok' AND pt.level = 'timing'
              AND pt.device = 'cpu'
        ORDER BY pt.model, pt.threads, pt.backend, pt.batch_size
    """, [run_id])


def _stored_before_precision(name: str) -> str:
    # Points stored before schema 15 left their precision NULL: they ran in fp32.
    if name in ("embedding_precision", "dense_precision"):
        return f"COALESCE(pt.{name}, '{REFERENCE}') AS {name}"
    return f"pt.{name}"


def roofline_table(store: Any, run_id: str, ceilings: pd.DataFrame | None = None
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


def point_precision(point: object) -> Precision:
    """A loaded point's precision (its columns NULL, or absent, before schema 15: fp32)."""
    def read(name: str) -> str:
        value = getattr(point, name, None)
        return value if isinstance(value, str) and value else REFERENCE

    return Precision(embedding=read("embedding_precision"), dense=read("dense_precision"))


def _row(point: object, ceilings: Ceilings | None) -> dict[str, object]:
    spec = spec_from_config(json.loads(point.spec))
    precision = point_precision(point)
    size = footprint(spec, precision)
    measured = float(point.median_ms)
    row: dict[str, object] = {
        "run_id": point.run_id, "platform_id": point.platform_id, "model": point.model,
        "model_type": point.model_type, "row_scale": point.row_scale,
        "batch_size": int(point.batch_size), "device": point.device,
        "threads": int(point.threads), "backend": point.backend,
        "cache_state": getattr(point, "cache_state", None) or STORED_BEFORE_CACHE_STATE,
        "embedding_precision": precision.embedding, "dense_precision": precision.dense,
        "measured_ms": measured,
        "p5_ms": point.p5_ms, "p95_ms": point.p95_ms, "build_seconds": point.build_seconds,
        "compile_seconds": _number(point.compile_seconds),
        "peak_memory_growth_bytes": point.peak_memory_growth_bytes,
        "model_bytes": size.model_bytes, "embedding_bytes": size.embedding_bytes}
    query = QuerySpec(**json.loads(point.query)) if point.query else QuerySpec()
    # A file's ids have no distinct-row model here (the file may not even be on this
    # machine): such points get no bound rather than one of a synthetic distribution.
    if ceilings is not None and query.distribution not in FILE_DISTRIBUTIONS:
        distinct = _number(point.distinct_batches)
        cycled = int(distinct) if distinct >= 1 else 1
        bound = point_bound(spec, int(point.batch_size), ceilings, query, cycled, precision)
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
    from recstack.records.profile import profiler_overhead_of

    profiled_us, plain_us = _number(point.profiled_median_us), _number(point.unprofiled_median_us)
    # The profiler's added time, against the same worker's plain iterations; unknown (no
    # bracket) when they drifted across the profiler.
    overhead, _ = profiler_overhead_of(profiled_us, plain_us,
                                       getattr(point, "plain_before_median_us", None),
                                       getattr(point, "plain_after_median_us", None))
    unknown = math.isnan(overhead)
    added_ms = math.nan if unknown else (profiled_us - plain_us) / 1e3
    row["overhead_share_low"], row["overhead_share_high"] = (
        (math.nan, math.nan) if unknown else
        overhead_shares(measured, operator_ms, added_ms, _number(point.profiler_outside_us) / 1e3))
    row["overhead_basis"] = ("profiler" if row["overhead_share_low"] == row["overhead_share_low"]
                             else None)
    return row


def _number(value: object) -> float:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return math.nan
    return number


def memory_bound_points(table: pd.DataFrame) -> pd.DataFrame:
    """Per bounded point of a :func:`roofline_table` (or :class:`RooflineView` ``table``)
    frame, whether memory bounds it, with its precision: columns MEMORY_BOUND_COLUMNS.
    ``memory_share`` is the share of the point's bound in stages whose memory time exceeds
    their compute time; ``memory_bound`` is True when it is at least MEMORY_BOUND_SHARE.
    ``ceiling_fallback`` marks points of a reduced precision bounded at fp32's ceilings
    (``ceiling_basis`` says which), whose verdict leans on the fp32 kernels' rates. Points
    without a bound (no ceilings for their platform and threads) are left out."""
    bounded = table[table.bound_ms.notna()] if "bound_ms" in table else table
    return bounded.reindex(columns=MEMORY_BOUND_COLUMNS).reset_index(drop=True)


# ---- the runs of a report ------------------------------------------------------------------


@dataclass
class RooflineView:
    """The roofline of several runs: ``table`` (ROOFLINE_COLUMNS, every run's points that
    have a bound), ``ceilings`` (per run, the rows of the ceiling sets that judged it),
    ``chosen`` (CEILING_SET_COLUMNS + run_id: the sets that judged a measured point of each
    run) and ``problems`` (per run that could not be bounded, why, as one line)."""

    table: pd.DataFrame
    ceilings: dict[str, pd.DataFrame] = field(default_factory=dict)
    chosen: pd.DataFrame = field(
        default_factory=lambda: pd.DataFrame(columns=[*CEILING_SET_COLUMNS, "run_id"]))
    problems: list[str] = field(default_factory=list)


def roofline_view(store: Any, run_ids: list[str]) -> RooflineView:
    """:func:`roofline_table` of each run against the stored ceilings measured nearest to
    it; a run without CPU timing points or ceilings is a problem, not an error."""
    stored = store.load_ceilings(every_set=True)
    view = RooflineView(table=pd.DataFrame(columns=ROOFLINE_COLUMNS))
    tables, chosen = [], []
    for run_id in run_ids:
        ceilings, sets = nearest_ceiling_sets(stored, *store.run_span(run_id))
        view.ceilings[run_id] = ceilings
        try:
            table = roofline_table(store, run_id, ceilings)
        except RecstackError as error:
            view.problems.append(f"run {run_id}: {error}")
            continue
        if table.bound_ms.notna().any():
            tables.append(table)
        measured = set(zip(table.platform_id, table.threads))
        judged = pd.Series([(p, t) in measured for p, t in zip(sets.platform_id, sets.threads)],
                           index=sets.index, dtype=bool)
        chosen.append(sets[judged].assign(run_id=run_id))
    if tables:
        view.table = pd.concat(tables, ignore_index=True)
    if chosen:
        view.chosen = pd.concat(chosen, ignore_index=True)
    return view
