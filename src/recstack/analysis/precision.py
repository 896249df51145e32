"""Precision: what reducing a model's numeric precision (:mod:`recstack.precision`) gains in
latency and footprint, and what it costs in accuracy, configuration by configuration.

A timing point in a reduced precision is set against the fp32 point of its configuration
(``systems.CONFIGURATION`` less the precision: the same run, platform, model, table size,
batch size, device, threads and backend) in the same cache state, never against another
configuration's: :func:`precision_table` per point, :func:`precision_summary` per model and
precision. Beside the speedup stand the output deviation the timing level stored (how far
the reduced model's predictions were from the fp32 model's on the same queries), the
embedding class's share of operator time where the run profiled the configuration
(``breakdown.breakdown``'s classes), and the footprint of the spec in that precision
(:func:`recstack.footprint.footprint`), and where the machine's ceilings were measured
whether memory bounds the point (``roofline.memory_bound_points``: its bound in that
precision). The report's precision section (``report/precision_section.py``) renders these
frames.
"""

from __future__ import annotations

import json
import math
from typing import Any

import pandas as pd

from recstack.analysis.systems import (CONFIGURATION, PRECISION_COLUMNS, order_models,
                                       precision_labels, precision_rank, precisions_of,
                                       prefer_cold, sort_points, with_precision)
from recstack.precision import FP32, REFERENCE, Precision

__all__ = ["PRECISION_SUMMARY_COLUMNS", "PRECISION_TABLE_COLUMNS", "load_memory_bound",
           "load_model_specs", "precision_summary", "precision_table", "precisions_of"]

# A configuration apart from its precision: what an fp32 point and a reduced one share.
SAME_CONFIGURATION = [c for c in CONFIGURATION if c not in PRECISION_COLUMNS]
PRECISION_TABLE_COLUMNS = [
    "run_id", "platform_id", "model", "row_scale", "batch_size", "device", "threads",
    "backend", "cache_state", "precision", "embedding_precision", "dense_precision",
    "median_ms", "p95_ms", "throughput_per_s", "fp32_median_ms", "speedup",
    "max_abs_deviation", "mean_abs_deviation", "deviation_samples", "embedding_share",
    "embedding_bytes", "gathered_bytes_per_sample", "embedding_bytes_ratio", "memory_share",
    "memory_bound"]
"""One row per timing point (cold where a configuration has both states). ``precision``:
``Precision.label`` ('fp32', 'emb=int8,dense=fp32'). ``median_ms``, ``p95_ms``: latency;
``throughput_per_s``: samples per second at the median. ``fp32_median_ms``: the fp32 point
of the same configuration and cache state (NaN where none was measured); ``speedup``: its
median over this one (1 for fp32 itself; above 1: faster). ``max_abs_deviation``,
``mean_abs_deviation``, ``deviation_samples``: the stored output deviation from the fp32
model (NaN in fp32, and where the fp32 model did not fit beside the point's).
``embedding_share``: the embedding class's share of operator time (overhead excluded) in
the run's operator profile of the same configuration (the median where several machines
profiled it; NaN without one). ``embedding_bytes``: the stored tables in this precision;
``gathered_bytes_per_sample``: the rows one sample reads; ``embedding_bytes_ratio``: the
tables over their fp32 size (NaN where the point's spec is unknown). ``memory_share``: the
share of the point's roofline bound in memory-limited stages, ``memory_bound``: whether that
share makes memory its limit (``roofline.memory_bound_points``; NaN and None where its
platform has no stored ceilings)."""
PRECISION_SUMMARY_COLUMNS = [
    "model", "row_scale", "precision", "embedding_precision", "dense_precision", "points",
    "compared", "speedup_min", "speedup_median", "speedup_max", "max_abs_deviation",
    "embedding_bytes_ratio", "memory_bound_fraction"]
"""Per model, table size and precision (fp32 first): ``points`` (timing points),
``compared`` (of them with an fp32 point of their configuration), the smallest, median and
largest ``speedup`` over those, the largest ``max_abs_deviation``, the tables'
``embedding_bytes_ratio`` (NaN where not known) and ``memory_bound_fraction``: of the points
with a roofline bound, the share memory bounds (NaN without one)."""
SPEC_COLUMNS = ["run_id", "model", "row_scale", "spec"]
EMBEDDING_CLASS = "embedding"


def load_model_specs(store: Any, run_ids: list[str] | None = None) -> pd.DataFrame:
    """The spec each model of the runs ran (one row per run, model and table size; JSON
    text). Columns SPEC_COLUMNS."""
    from recstack.analysis.select import run_filter

    runs, parameters = run_filter(run_ids)
    frame = store.query(f"""
        SELECT DISTINCT pt.run_id, pt.model, pt.row_scale, CAST(pt.spec AS VARCHAR) AS spec
        FROM points pt WHERE pt.status = 'ok' AND pt.spec IS NOT NULL{runs}
        ORDER BY pt.run_id, pt.model, pt.row_scale
    """, parameters)
    return frame.drop_duplicates(SPEC_COLUMNS[:3])[SPEC_COLUMNS].reset_index(drop=True)


def precision_table(timings: pd.DataFrame, shares: pd.DataFrame | None = None,
                    specs: pd.DataFrame | None = None,
                    memory_bound: pd.DataFrame | None = None) -> pd.DataFrame:
    """Every timing point with its speedup over fp32, its deviation, its embedding share,
    its footprint and whether memory bounds it (columns PRECISION_TABLE_COLUMNS, see
    there), in the order of every table of points (``systems.sort_points``: fp32 first
    within a configuration).

    ``timings``: ``systems.load_timings``; ``shares``: ``breakdown.breakdown`` (None: no
    embedding share); ``specs``: :func:`load_model_specs` (None: no footprint);
    ``memory_bound``: ``roofline.memory_bound_points`` (None: no memory columns; see
    :func:`load_memory_bound`)."""
    if timings.empty:
        return pd.DataFrame(columns=PRECISION_TABLE_COLUMNS)
    everything = with_precision(timings)
    key = [c for c in [*SAME_CONFIGURATION, "cache_state"] if c in everything.columns]
    reference = everything[(everything.embedding_precision == REFERENCE)
                           & (everything.dense_precision == REFERENCE)]
    reference = reference.groupby(key, dropna=False, as_index=False).median_ms.median()
    points = with_precision(prefer_cold(timings)).merge(
        reference.rename(columns={"median_ms": "fp32_median_ms"}), on=key, how="left")
    points = points.assign(
        precision=precision_labels(points),
        speedup=points.fp32_median_ms / points.median_ms,
        max_abs_deviation=_numbers(points, "output_max_abs_deviation"),
        mean_abs_deviation=_numbers(points, "output_mean_abs_deviation"),
        deviation_samples=_numbers(points, "deviation_samples"),
        embedding_share=_embedding_shares(points, shares))
    points = _with_footprints(points, specs)
    points = _with_memory_bound(points, memory_bound)
    for column in PRECISION_TABLE_COLUMNS:
        if column not in points.columns:
            points[column] = math.nan
    return sort_points(points)[PRECISION_TABLE_COLUMNS].reset_index(drop=True)


def _numbers(frame: pd.DataFrame, column: str) -> pd.Series:
    if column not in frame.columns:
        return pd.Series(math.nan, index=frame.index, dtype=float)
    return pd.to_numeric(frame[column], errors="coerce").astype(float)


def _embedding_shares(points: pd.DataFrame, shares: pd.DataFrame | None) -> pd.Series:
    """Per row of ``points``, the embedding class's share of operator time in the operator
    profiles of its configuration and cache state (NaN where none)."""
    from recstack.analysis.breakdown import OVERHEAD

    missing = pd.Series(math.nan, index=points.index, dtype=float)
    if shares is None or shares.empty:
        return missing
    rows = with_precision(shares[(shares.view == "operator")
                                 & (shares.category != OVERHEAD)])
    if rows.empty:
        return missing
    per_point = rows.assign(embedding=rows.time_us.where(rows.category == EMBEDDING_CLASS,
                                                         0.0))
    key = [c for c in [*SAME_CONFIGURATION, *PRECISION_COLUMNS, "cache_state"]
           if c in per_point.columns and c in points.columns]
    totals = per_point.groupby([*key, "point_key"], dropna=False, as_index=False)[
        ["embedding", "time_us"]].sum()
    totals = totals.assign(share=totals.embedding / totals.time_us)
    median = totals.groupby(key, dropna=False, as_index=False).share.median()
    found = points[key].merge(median, on=key, how="left")
    return pd.Series(found.share.to_numpy(dtype=float), index=points.index)


def _with_footprints(points: pd.DataFrame, specs: pd.DataFrame | None) -> pd.DataFrame:
    """``points`` with embedding_bytes, gathered_bytes_per_sample and embedding_bytes_ratio
    of its spec (by run, model and table size) in its precision; NaN without a spec."""
    from recstack.footprint import footprint
    from recstack.specs import spec_from_config

    if specs is None or specs.empty:
        return points
    texts = points[SPEC_COLUMNS[:3]].merge(specs, on=SPEC_COLUMNS[:3], how="left").spec
    cache: dict[tuple[str, str, str], tuple[float, float, float]] = {}
    values = []
    for text, embedding, dense in zip(texts, points.embedding_precision,
                                      points.dense_precision):
        if not isinstance(text, str):
            values.append((math.nan, math.nan, math.nan))
            continue
        if (text, embedding, dense) not in cache:
            spec = spec_from_config(json.loads(text), source="stored spec")
            size = footprint(spec, Precision(embedding, dense))
            full = footprint(spec, FP32).embedding_bytes
            cache[(text, embedding, dense)] = (
                float(size.embedding_bytes), size.gathered_bytes_per_sample,
                size.embedding_bytes / full if full else math.nan)
        values.append(cache[(text, embedding, dense)])
    table = pd.DataFrame(values, index=points.index, columns=[
        "embedding_bytes", "gathered_bytes_per_sample", "embedding_bytes_ratio"])
    return points.assign(**{c: table[c] for c in table.columns})


def load_memory_bound(store: Any, run_ids: list[str]) -> pd.DataFrame:
    """``roofline.memory_bound_points`` of the runs' roofline (``roofline.roofline_view``:
    each point bounded in its precision at its platform's stored ceilings); empty where no
    run could be bounded (no ceilings stored for its platform)."""
    from recstack.analysis.roofline import memory_bound_points, roofline_view

    return memory_bound_points(roofline_view(store, run_ids).table)


def _with_memory_bound(points: pd.DataFrame, memory_bound: pd.DataFrame | None
                       ) -> pd.DataFrame:
    """``points`` with memory_share and memory_bound of the same point (run, platform,
    model, batch size, deployment, cache state and precision) in ``memory_bound``."""
    if memory_bound is None or memory_bound.empty:
        return points
    key = [c for c in ["run_id", "platform_id", "model", "batch_size", "device", "threads",
                       "backend", "cache_state", *PRECISION_COLUMNS]
           if c in memory_bound.columns and c in points.columns]
    bound = with_precision(memory_bound)[[*key, "memory_share", "memory_bound"]]
    found = points[key].merge(bound.drop_duplicates(key), on=key, how="left")
    return points.assign(memory_share=found.memory_share.to_numpy(dtype=float),
                         memory_bound=found.memory_bound.to_numpy(dtype=object))


def precision_summary(table: pd.DataFrame) -> pd.DataFrame:
    """:func:`precision_table`'s frame per model, table size and precision (columns
    PRECISION_SUMMARY_COLUMNS, see there): each speedup is within one configuration, so
    the range spans deployments and batch sizes, never one against another. Models in the
    zoo's order, fp32 first."""
    if table.empty:
        return pd.DataFrame(columns=PRECISION_SUMMARY_COLUMNS)
    rows = []
    key = ["model", "row_scale", "precision", *PRECISION_COLUMNS]
    for values, group in table.groupby(key, sort=False, dropna=False):
        compared = group.speedup.dropna()
        bounded = group.memory_bound.dropna()
        rows.append({**dict(zip(key, values)), "points": len(group),
                     "compared": len(compared),
                     "speedup_min": compared.min() if len(compared) else math.nan,
                     "speedup_median": compared.median() if len(compared) else math.nan,
                     "speedup_max": compared.max() if len(compared) else math.nan,
                     "max_abs_deviation": group.max_abs_deviation.max(),
                     "embedding_bytes_ratio": group.embedding_bytes_ratio.max(),
                     "memory_bound_fraction": (bounded.astype(bool).mean() if len(bounded)
                                               else math.nan)})
    summary = pd.DataFrame(rows, columns=PRECISION_SUMMARY_COLUMNS)
    summary = summary.sort_values(["row_scale", *PRECISION_COLUMNS], key=precision_rank,
                                  kind="stable")
    return order_models(summary)[PRECISION_SUMMARY_COLUMNS]
