"""View frames: what the CLI's summaries and the report's sections show, computed once.

Each function takes the frames the analysis loaders return (``systems.load_timings``,
``breakdown.load_operators``, ``topdown.load_hardware``) and returns a DataFrame whose
columns its docstring names. The renderers (``cli/summaries.py``, ``report/*``) only format
these frames: a value not measured or not applicable is NaN or None here, and
:data:`recstack.text.MISSING` there.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

import pandas as pd

from recstack.analysis.breakdown import (OVERHEAD, breakdown, dominant, load_operators,
                                         profiler_overhead)
from recstack.analysis.systems import (CONFIGURATION, PRECISION_COLUMNS, VARIANT,
                                       best_deployment, deployment_spread, order_models,
                                       precision_rank, prefer_cold, sort_points,
                                       with_precision)
from recstack.analysis.topdown import LEVEL1

POINT = ["run_id", "point_key"]

# ---- systems level --------------------------------------------------------------------------

SYSTEMS_SUMMARY_COLUMNS = [
    "model", *PRECISION_COLUMNS, "row_scale", "smallest_batch", "smallest_batch_median_ms",
    "peak_throughput_per_s", "peak_device", "peak_threads", "peak_backend", "peak_batch_size",
    "target_ms", "best_device", "best_threads", "best_backend", "best_batch_size", "best_p95_ms",
    "best_throughput_per_s", "meets_target", "spread_ratio", "spread_ratio_within_target"]
DEPLOYMENT_CHOICE_COLUMNS = ["model", *PRECISION_COLUMNS, "deployments", "best", "worst",
                             "best_throughput_per_s", "worst_throughput_per_s", "ratio",
                             "ratio_within_target"]


def systems_summary(timings: pd.DataFrame, targets: Any) -> pd.DataFrame:
    """One row per model and precision (``systems.VARIANT``; models in the order of
    ``timings``, fp32 first),
    columns SYSTEMS_SUMMARY_COLUMNS: the median latency at its smallest batch (the best
    deployment there), its peak throughput and the deployment reaching it (``peak_*``), the
    best deployment under its p95 target (``best_*``, :func:`systems.best_deployment`;
    ``meets_target`` False when none meets it and the lowest p95 is shown), and how much its
    best deployment beats its worst in throughput, over all deployments and over those
    meeting the target (NaN where none does). A configuration measured cold and warm counts
    by its cold point (``systems.prefer_cold``)."""
    timings = with_precision(prefer_cold(timings))
    best = best_deployment(timings, targets).set_index(VARIANT)
    spread = deployment_spread(timings).set_index(VARIANT).ratio
    within = deployment_spread(timings, targets).set_index(VARIANT).ratio
    rows = []
    for variant, group in timings.groupby(VARIANT, sort=False):
        smallest = group[group.batch_size == group.batch_size.min()]
        peak = group.loc[group.throughput_per_s.idxmax()]
        choice = best.loc[variant]
        rows.append({
            **dict(zip(VARIANT, variant)), "row_scale": group.row_scale.iloc[0],
            "smallest_batch": int(smallest.batch_size.iloc[0]),
            "smallest_batch_median_ms": smallest.median_ms.min(),
            "peak_throughput_per_s": peak.throughput_per_s, "peak_device": peak.device,
            "peak_threads": peak.threads, "peak_backend": peak.backend,
            "peak_batch_size": peak.batch_size, "target_ms": choice.target_ms,
            "best_device": choice.device, "best_threads": choice.threads,
            "best_backend": choice.backend, "best_batch_size": choice.batch_size,
            "best_p95_ms": choice.p95_ms, "best_throughput_per_s": choice.throughput_per_s,
            "meets_target": bool(choice.meets_target), "spread_ratio": spread.get(variant),
            "spread_ratio_within_target": within.get(variant, math.nan)})
    summary = pd.DataFrame(rows, columns=SYSTEMS_SUMMARY_COLUMNS)
    rank = {model: position for position, model in enumerate(dict.fromkeys(timings.model))}
    return summary.sort_values(
        VARIANT, kind="stable", key=lambda c: c.map(rank) if c.name == "model"
        else precision_rank(c)).reset_index(drop=True)


def deployment_choice(timings: pd.DataFrame, targets: Any) -> pd.DataFrame:
    """Per model and precision, the best and the worst deployment by throughput and their
    ratio (:func:`systems.deployment_spread`), with ``ratio_within_target``: the same ratio
    over the deployments meeting the model's p95 target (NaN where none does). Columns
    DEPLOYMENT_CHOICE_COLUMNS; cold points where a configuration has both."""
    spread = deployment_spread(timings)
    within = deployment_spread(timings, targets).set_index(VARIANT).ratio
    ratios = [within.get(tuple(key), math.nan)
              for key in spread[VARIANT].itertuples(index=False)]
    return spread.assign(ratio_within_target=pd.Series(ratios, index=spread.index,
                                                       dtype=float))[
        DEPLOYMENT_CHOICE_COLUMNS]


@dataclass(frozen=True)
class SpreadExtremes:
    """The largest spread between deployment choices, over all models: the headline."""

    model: str
    ratio: float
    best: str
    worst: str
    within_model: str | None
    """The model with the largest spread among deployments meeting its target (None when
    no deployment of any model meets its target)."""
    within_ratio: float
    precision: str = "fp32"
    """``model``'s precision (``Precision.label``): a model's spread is within one."""
    within_precision: str = "fp32"


def spread_extremes(choice: pd.DataFrame) -> SpreadExtremes | None:
    """The largest ``ratio`` and ``ratio_within_target`` of :func:`deployment_choice`'s frame
    and their models; None when it is empty."""
    from recstack.analysis.systems import precision_labels

    if choice.empty:
        return None
    labels = precision_labels(choice)
    top = choice.ratio.idxmax()
    within = choice.ratio_within_target
    inside = within.idxmax() if within.notna().any() else None
    return SpreadExtremes(
        model=str(choice.model[top]), ratio=float(choice.ratio[top]),
        best=str(choice.best[top]), worst=str(choice.worst[top]),
        within_model=None if inside is None else str(choice.model[inside]),
        within_ratio=math.nan if inside is None else float(within[inside]),
        precision=labels[top], within_precision="fp32" if inside is None else labels[inside])


def timing_quality(timings: pd.DataFrame) -> pd.DataFrame:
    """How steady the timing points were, in one row (none without timings): points,
    min_iterations, max_iterations, median_iterations, spread_median and spread_max (the
    p5-p95 spread over the median latency), unstable (points flagged unstable)."""
    columns = ["points", "min_iterations", "max_iterations", "median_iterations",
               "spread_median", "spread_max", "unstable"]
    if timings.empty:
        return pd.DataFrame(columns=columns)
    spread = _relative_spread(timings)
    return pd.DataFrame([[len(timings), int(timings.iterations.min()),
                          int(timings.iterations.max()), int(timings.iterations.median()),
                          spread.median(), spread.max(), int(_unstable(timings).sum())]],
                        columns=columns)


def unstable_points(timings: pd.DataFrame) -> pd.DataFrame:
    """The timing points flagged unstable: the timings' columns plus ``spread`` (p5-p95 over
    the median latency)."""
    flagged = timings[_unstable(timings)]
    return sort_points(flagged.assign(spread=_relative_spread(flagged)))


def _numbers(frame: pd.DataFrame, column: str) -> pd.Series:
    """``frame[column]`` as floats (NaN where missing, or all NaN without the column)."""
    if column not in frame.columns:
        return pd.Series(math.nan, index=frame.index, dtype=float)
    return pd.to_numeric(frame[column], errors="coerce").astype(float)


def _relative_spread(timings: pd.DataFrame) -> pd.Series:
    return (timings.p95_ms - timings.p5_ms) / timings.median_ms


def _unstable(timings: pd.DataFrame) -> pd.Series:
    return timings.unstable.astype("boolean").fillna(False).astype(bool)


def measurement_basis(timings: pd.DataFrame) -> pd.DataFrame:
    """How the timing points' backends were chosen and how often points were measured
    again, in one row (none without timings): points, raced (a race on this platform),
    shipped (the shipped file measured elsewhere), as_given, unrecorded (stored before the
    basis was), attempts_recorded (points that recorded their attempts), remeasured
    (attempts > 1), unstable (flagged still)."""
    columns = ["points", "raced", "shipped", "as_given", "unrecorded", "attempts_recorded",
               "remeasured", "unstable"]
    if timings.empty:
        return pd.DataFrame(columns=columns)
    basis = timings.get("backend_basis", pd.Series(None, index=timings.index)).astype(object)
    attempts = _numbers(timings, "attempts")
    raced = basis.str.startswith("race", na=False)
    return pd.DataFrame([[len(timings), int(raced.sum()), int((basis == "shipped file").sum()),
                          int((basis == "as given").sum()), int(basis.isna().sum()),
                          int(attempts.notna().sum()), int((attempts > 1).sum()),
                          int(_unstable(timings).sum())]],
                        columns=columns)


# ---- cache state ----------------------------------------------------------------------------

CACHE_COMPARISON_COLUMNS = [
    "model", "batch_size", "device", "threads", "backend", *PRECISION_COLUMNS, "warm_ms",
    "cold_ms",
    "cold_over_warm", "memory_share", "working_set_mib", "llc_mib", "llc_multiple", "reached",
    "run_id"]
MIB = 2**20


def cache_comparison(timings: pd.DataFrame) -> pd.DataFrame:
    """One row per configuration measured both cold and warm (``systems.CONFIGURATION``),
    columns CACHE_COMPARISON_COLUMNS: the median latencies, ``cold_over_warm``,
    ``memory_share`` (1 - warm/cold: the share of the cold latency the warm cache hid), and
    the cold point's working set, the LLC it was sized against (MiB), their ratio
    (``llc_multiple``) and whether it ``reached`` the cold multiple
    (:data:`recstack.working_set.COLD_LLC_MULTIPLE`). Sorted by model (the zoo's order) and
    batch size."""
    if timings.empty or "cache_state" not in timings.columns:
        return pd.DataFrame(columns=CACHE_COMPARISON_COLUMNS)
    timings = with_precision(timings if "run_id" in timings.columns
                             else timings.assign(run_id=None))
    key = [c for c in CONFIGURATION if c in timings.columns]
    warm = timings[timings.cache_state == "warm"][[*key, "median_ms"]]
    pairs = cold_working_sets(timings).merge(warm.rename(columns={"median_ms": "warm_ms"}),
                                             on=key)
    pairs = pairs.assign(cold_over_warm=pairs.cold_ms / pairs.warm_ms,
                         memory_share=1 - pairs.warm_ms / pairs.cold_ms)
    return sort_points(pairs)[CACHE_COMPARISON_COLUMNS].reset_index(drop=True)


def cold_working_sets(timings: pd.DataFrame) -> pd.DataFrame:
    """The cold timing points: their configuration, ``cold_ms`` (median), the distinct
    embedding bytes their batches touch and the LLC (MiB), ``llc_multiple`` (their ratio)
    and ``reached`` (False where the tables are too small for the cold multiple, so every
    row they have is touched instead; NaN ratio where not recorded)."""
    from recstack.working_set import COLD_LLC_MULTIPLE

    if timings.empty or "cache_state" not in timings.columns:
        return pd.DataFrame(columns=[*CONFIGURATION, "cold_ms", "working_set_mib", "llc_mib",
                                     "llc_multiple", "reached"])
    cold = timings[timings.cache_state == "cold"]
    working, llc = _numbers(cold, "working_set_bytes"), _numbers(cold, "llc_bytes")
    multiple = working / llc.where(llc > 0)
    key = [c for c in CONFIGURATION if c in timings.columns]
    return sort_points(cold[key].assign(
        cold_ms=cold.median_ms, working_set_mib=working / MIB, llc_mib=llc / MIB,
        llc_multiple=multiple, reached=(multiple >= COLD_LLC_MULTIPLE).where(
            multiple.notna())))


# ---- model x batch grids ---------------------------------------------------------------------

GRID_KEYS = ["run_id", "device", "threads", "backend", *PRECISION_COLUMNS, "cache_state"]


def batch_grid(frame: pd.DataFrame, cells: list[str]) -> pd.DataFrame:
    """``frame`` (one row per point) as one row per model and one column per batch size
    (ascending ints), each cell a dict of the point's ``cells`` (None where not measured).
    The rows' key is ``model`` and, of GRID_KEYS, only those needed to tell two points of one
    model and batch apart (another run, device, thread count...), in the key's first
    columns. Rows by model (the zoo's order), then the other keys."""
    keys = ["model"]
    for column in GRID_KEYS:
        if column in frame.columns and frame.duplicated([*keys, "batch_size"]).any() and (
                frame.groupby([*keys, "batch_size"])[column].nunique(dropna=False) > 1).any():
            keys.append(column)
    batches = sorted(int(b) for b in frame.batch_size.unique())
    rows = []
    for key, group in frame.groupby(keys, sort=False, dropna=False):
        values = dict(zip(keys, key if isinstance(key, tuple) else (key,)))
        cell = {int(r.batch_size): {c: getattr(r, c) for c in cells}
                for r in group.itertuples(index=False)}
        rows.append({**values, **{b: cell.get(b) for b in batches}})
    grid = pd.DataFrame(rows, columns=[*keys, *batches])
    return order_models(grid.sort_values(keys[1:], kind="stable") if keys[1:] else grid)


def latency_grid(timings: pd.DataFrame) -> pd.DataFrame:
    """Median latency per model (rows) and batch size (columns): :func:`batch_grid` of the
    timings, cold points where a configuration has both; cells median_ms, p95_ms,
    unstable, backend."""
    return batch_grid(prefer_cold(timings).assign(unstable=_unstable(timings)),
                      ["median_ms", "p95_ms", "unstable", "backend"])


def dominant_grid(summary: pd.DataFrame) -> pd.DataFrame:
    """The dominant operator class and model part per model (rows) and batch size
    (columns): :func:`batch_grid` of :func:`software_summary`'s frame; cells top_class,
    top_class_share, top_part, top_part_share."""
    return batch_grid(summary, ["top_class", "top_class_share", "top_part", "top_part_share"])


# ---- software level -------------------------------------------------------------------------

SOFTWARE_SUMMARY_COLUMNS = [
    "run_id", "point_key", "model", "device", "threads", "backend", *PRECISION_COLUMNS,
    "cache_state", "batch_size", "top_class",
    "top_class_share", "top_part", "top_part_share", "overhead_share", "profiler_overhead"]


def software_frames(store: Any, run_ids: list[str] | None = None
                    ) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(operators, profiles, shares) of the runs: :func:`breakdown.load_operators` and
    :func:`run_shares`."""
    operators, profiles = load_operators(store, run_ids)
    return operators, profiles, run_shares(operators, profiles)


def run_shares(operators: pd.DataFrame, profiles: pd.DataFrame) -> pd.DataFrame:
    """:func:`breakdown.breakdown` computed run by run (a point's key is the same in every
    run that measured it), models in the zoo's order; an empty frame without profiles."""
    shares = [breakdown(operators[operators.run_id == run], profiles[profiles.run_id == run])
              for run in profiles.run_id.unique()]
    return order_models(pd.concat(shares, ignore_index=True)) if shares else pd.DataFrame()


def software_summary(shares: pd.DataFrame, profiles: pd.DataFrame) -> pd.DataFrame:
    """Per profiled point, columns SOFTWARE_SUMMARY_COLUMNS: the dominant operator class
    and model part with their shares of the iteration (:func:`breakdown.dominant`), the
    share no operator covers (``overhead_share``) and the profiler's overhead
    (:func:`breakdown.profiler_overhead`). Sorted by model (the zoo's order), batch size,
    device, threads and backend (``systems.sort_points``)."""
    if shares.empty:
        return pd.DataFrame(columns=SOFTWARE_SUMMARY_COLUMNS)
    by_class = dominant(shares, "operator").rename(
        columns={"category": "top_class", "share": "top_class_share"})
    by_part = dominant(shares, "part")[[*POINT, "category", "share"]].rename(
        columns={"category": "top_part", "share": "top_part_share"})
    overhead = shares[(shares.view == "operator") & (shares.category == OVERHEAD)][
        [*POINT, "share"]].rename(columns={"share": "overhead_share"})
    profiler = profiler_overhead(profiles)[[*POINT, "profiler_overhead"]]
    table = (by_class.merge(by_part, on=POINT, how="left").merge(overhead, on=POINT, how="left")
             .merge(profiler, on=POINT, how="left"))
    if "cache_state" not in table.columns:
        table = table.assign(cache_state=None)
    return sort_points(with_precision(table))[SOFTWARE_SUMMARY_COLUMNS]


def profile_quality(profiles: pd.DataFrame) -> pd.DataFrame:
    """The profiler's overhead over the profiled points, in one row (none without profiles):
    points, overhead_median, overhead_min, overhead_max (profiled over unprofiled latency,
    minus 1), coverage_median (the share of the iteration operators cover)."""
    columns = ["points", "overhead_median", "overhead_min", "overhead_max", "coverage_median"]
    if profiles.empty:
        return pd.DataFrame(columns=columns)
    overhead = profiler_overhead(profiles)
    added = overhead.profiler_overhead
    return pd.DataFrame([[len(overhead), added.median(), added.min(), added.max(),
                          overhead.coverage.median()]], columns=columns)


# ---- hardware level -------------------------------------------------------------------------

STALLS = LEVEL1[1:]


def source_kind(source: str) -> str:
    """``simulated`` or ``measured``: what a hardware point's source says it is."""
    return "simulated" if str(source).startswith("simulated") else "measured"


def hardware_summary(hardware: pd.DataFrame) -> pd.DataFrame:
    """The hardware points (``topdown.load_hardware``'s columns, its order) with ``kind``
    (:func:`source_kind`) and ``top_stall`` (the largest level-1 category other than
    retiring; None where top-down was not measured)."""
    stalls = hardware[STALLS].astype(float)
    top = [row.idxmax() if row.notna().any() else None for _, row in stalls.iterrows()]
    return hardware.assign(kind=hardware.source.map(source_kind),
                           top_stall=pd.Series(top, index=hardware.index, dtype=object))


def hardware_notes(hardware: pd.DataFrame) -> pd.DataFrame:
    """What a reader of the hardware figures must know, one row each: ``kind`` ``source``
    (every distinct source, sorted), then ``caveat`` (every distinct caveat, sorted);
    ``text``."""
    sources = sorted(set(hardware.source))
    caveats = sorted({c for text in hardware.caveats for c in _caveats(text)})
    return pd.DataFrame([("source", s) for s in sources] + [("caveat", c) for c in caveats],
                        columns=["kind", "text"])


def _caveats(text: Any) -> list[str]:
    """A stored caveats value as a list: JSON text, already a list, or missing."""
    if isinstance(text, (list, tuple)):
        return [str(c) for c in text]
    return [str(c) for c in json.loads(text)] if isinstance(text, str) and text else []


# ---- cross-stack and roofline ---------------------------------------------------------------


def strongest_correlations(correlations: pd.DataFrame, top: int = 10) -> pd.DataFrame:
    """The ``top`` strongest Spearman correlations per batch size (by |r|; NaN r left
    out): ``correlation.correlate``'s columns plus ``strength``."""
    spearman = correlations[correlations.method == "spearman"].dropna(subset=["r"])
    ranked = spearman.assign(strength=spearman.r.abs()).sort_values(
        ["batch_size", "strength"], ascending=[True, False])
    return ranked.groupby("batch_size").head(top)


def dominated_bottlenecks(dominance: pd.DataFrame) -> pd.DataFrame:
    """How many bottlenecks one feature dominates, in one row: bottlenecks, dominated."""
    return pd.DataFrame([[len(dominance), int(dominance.dominated.astype(bool).sum())]],
                        columns=["bottlenecks", "dominated"])


def best_efficiency(roofline: pd.DataFrame, min_batch: int = 1024) -> pd.DataFrame:
    """Per model, the best roofline efficiency among its points of at least ``min_batch``
    (``roofline.roofline_table``'s frame; cold points where a configuration has both).
    Columns: model, efficiency; the zoo's order."""
    roofline = prefer_cold(roofline)
    large = roofline[(roofline.batch_size >= min_batch) & roofline.efficiency.notna()]
    best = large.groupby("model", sort=False, as_index=False).efficiency.max()
    return order_models(best)[["model", "efficiency"]]
