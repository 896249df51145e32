"""Two runs (or two platforms) side by side, point by point.

Points are matched by ``config_key`` (the same model spec, batch, device, threads, backend,
queries and seed) and cache state (cold or warm; 'warm' for points stored before it was), so
runs on different machines compare configuration for configuration.
Per matched timing point: the ratio of median latencies (B over A: above 1 means B is
slower), and a two-sided Mann-Whitney U test on the raw per-iteration latencies (it assumes
no distribution, and latencies are skewed with long tails). With many points some would
look significant by chance, so the p-values are corrected for multiple comparisons (Holm,
which controls the family-wise error rate without assuming independent tests).
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd

from recstack.errors import RecstackError
from recstack.store import ResultStore
from recstack.text import MISSING, shown

COMPARISON_COLUMNS = ["config_key", "model", "row_scale", "batch_size", "device", "threads",
                      "backend", "cache_state", "present", "samples_a", "samples_b", "median_a_ms",
                      "median_b_ms", "ratio", "p_value", "p_adjusted", "significant",
                      "change"]
"""``present``: both, only A, only B. ``ratio``: median B / median A. ``p_value``: two-sided
Mann-Whitney U on the raw latencies; ``p_adjusted``: Holm-corrected over the matched points;
``significant``: p_adjusted < alpha; ``change``: slower, faster or same (B against A; "same"
when not significant). Statistics are NaN for points present in one run only."""


def _timing_points(store: ResultStore, run_id: str) -> pd.DataFrame:
    from recstack.analysis.select import point_columns

    return store.query(f"""
        SELECT pt.point_key, pt.config_key, pt.model, pt.row_scale, pt.batch_size, pt.device,
               pt.threads, pt.backend, {point_columns(names=["cache_state"])[0]},
               pt.method_version, t.median_ms
        FROM points pt JOIN timing t USING (run_id, point_key)
        WHERE pt.run_id = ? AND pt.status = 'ok' AND pt.level = 'timing'
    """, [run_id])


def _samples(store: ResultStore, run_id: str) -> dict[str, np.ndarray]:
    frame = store.query("SELECT point_key, latency_ns FROM samples WHERE run_id = ? "
                        "ORDER BY point_key, iteration", [run_id])
    return {key: group.latency_ns.to_numpy(dtype=np.float64)
            for key, group in frame.groupby("point_key")}


def check_runs(store: ResultStore, *run_ids: str) -> None:
    for run_id in run_ids:
        if store.run_info(run_id) is None:
            raise RecstackError(f"run: {shown(run_id)} is not in {store.path}; `recstack "
                                "results` lists the runs")


def compare_runs(store: ResultStore, run_a: str, run_b: str, alpha: float = 0.05
                 ) -> pd.DataFrame:
    """Every timing point of either run, matched by configuration (columns
    COMPARISON_COLUMNS), matched points first, in the zoo's model order."""
    from scipy.stats import mannwhitneyu
    from statsmodels.stats.multitest import multipletests

    from recstack.analysis.systems import order_models

    if not 0 < alpha < 1:
        raise RecstackError(f"--alpha: {alpha!r} is not allowed; expected a number between 0 "
                            "and 1 (e.g. 0.05)")
    check_runs(store, run_a, run_b)
    a, b = _timing_points(store, run_a), _timing_points(store, run_b)
    descriptive = ["config_key", "model", "row_scale", "batch_size", "device", "threads",
                   "backend"]
    merged = a.merge(b, on=["config_key", "cache_state"], how="outer", suffixes=("_a", "_b"),
                     indicator=True)
    for column in descriptive[1:]:
        merged[column] = merged[f"{column}_a"].combine_first(merged[f"{column}_b"])
    # An outer merge turns integer columns with gaps into floats; every row has one side.
    merged = merged.astype({"batch_size": "int64", "threads": "int64"})
    merged["present"] = merged["_merge"].map({"both": "both", "left_only": "only A",
                                              "right_only": "only B"}).astype(str)
    samples_a, samples_b = _samples(store, run_a), _samples(store, run_b)
    rows = []
    for row in merged.itertuples():
        xs = samples_a.get(row.point_key_a) if row.present != "only B" else None
        ys = samples_b.get(row.point_key_b) if row.present != "only A" else None
        p_value = np.nan
        if xs is not None and ys is not None and len(xs) and len(ys):
            p_value = float(mannwhitneyu(xs, ys, alternative="two-sided").pvalue)
        rows.append({**{c: getattr(row, c) for c in descriptive},
                     "cache_state": row.cache_state, "present": row.present,
                     "samples_a": 0 if xs is None else len(xs),
                     "samples_b": 0 if ys is None else len(ys),
                     "median_a_ms": row.median_ms_a, "median_b_ms": row.median_ms_b,
                     "ratio": row.median_ms_b / row.median_ms_a, "p_value": p_value})
    frame = pd.DataFrame(rows, columns=COMPARISON_COLUMNS[:15])
    tested = frame.p_value.notna()
    frame["p_adjusted"] = np.nan
    if tested.any():
        frame.loc[tested, "p_adjusted"] = multipletests(frame.p_value[tested], alpha=alpha,
                                                        method="holm")[1]
    frame["significant"] = frame.p_adjusted < alpha
    frame["change"] = np.select([~tested, ~frame.significant, frame.ratio > 1],
                                [MISSING, "same", "slower"], "faster")
    frame = frame.assign(_both=frame.present != "both").sort_values(
        ["_both", "batch_size", "device", "threads", "backend", "cache_state"]).drop(
        columns="_both")
    return order_models(frame)[COMPARISON_COLUMNS]


def settings_differences(store: ResultStore, run_a: str, run_b: str) -> dict[str, tuple[Any,
                                                                                        Any]]:
    """Timing settings that differ between the runs: {setting: (value in A, value in B)}.
    Different settings (warm-up, minimum time...) can shift latencies by themselves."""
    check_runs(store, run_a, run_b)
    a = json.loads(store.run_info(run_a)["settings"] or "{}")
    b = json.loads(store.run_info(run_b)["settings"] or "{}")
    return {key: (a.get(key), b.get(key)) for key in sorted(set(a) | set(b))
            if a.get(key) != b.get(key)}


def method_differences(store: ResultStore, run_a: str, run_b: str
                       ) -> dict[str, tuple[str, str]]:
    """Levels whose method versions differ between the runs: {level: (A's, B's)}, each side
    the versions its points were measured with."""
    frame = store.query("""
        SELECT run_id, level, string_agg(DISTINCT coalesce(CAST(method_version AS VARCHAR),
                                                           'unversioned'), ', ') AS versions
        FROM points WHERE run_id IN (?, ?) AND status = 'ok' GROUP BY run_id, level
    """, [run_a, run_b])
    found: dict[str, dict[str, str]] = {}
    for row in frame.itertuples():
        found.setdefault(row.level, {})[row.run_id] = row.versions
    return {level: (sides[run_a], sides[run_b]) for level, sides in sorted(found.items())
            if run_a in sides and run_b in sides and sides[run_a] != sides[run_b]}


def run_platforms(store: ResultStore, run_a: str, run_b: str) -> pd.DataFrame:
    """The two runs' platforms. Columns: run, run_id, platform_id, description, started_at."""
    check_runs(store, run_a, run_b)
    frame = store.query("""
        SELECT r.run_id, r.platform_id, p.description, r.started_at
        FROM runs r LEFT JOIN platforms p USING (platform_id) WHERE r.run_id IN (?, ?)
    """, [run_a, run_b])
    frame["run"] = frame.run_id.map({run_a: "A", run_b: "B"})
    return frame.sort_values("run")[["run", "run_id", "platform_id", "description",
                                     "started_at"]].reset_index(drop=True)
