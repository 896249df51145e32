"""Two runs (or two platforms) side by side, point by point.

Points are matched by ``config_key`` (the same model spec, batch, device, threads, backend,
queries and seed), cache state (cold or warm; 'warm' for points stored before it was) and
precision (embedding and dense; 'fp32' for points stored before it was), so runs on different
machines compare configuration for configuration. An int8 point is never set against an fp32
one: a run in int8 against a run in fp32 matches no point (each is "only A" or "only B"), and
:func:`precision_warnings` says why; the precision view (``analysis/precision.py``) compares
precisions within a run. A run on a cluster
measures points on several platforms: each side can be restricted to one of them
(``platform_a``, ``platform_b``; two platforms of one run compare so), and where a side
spans several platforms and none was named, points are matched platform by platform as
well, so that no row sets one machine against another unasked.
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
                      "backend", "embedding_precision", "dense_precision", "cache_state",
                      "platform_a", "platform_b", "present",
                      "samples_a", "samples_b", "median_a_ms", "median_b_ms", "ratio",
                      "p_value", "p_adjusted", "significant", "change"]
"""``platform_a``, ``platform_b``: the machine that measured each side's point (missing on
the side that lacks it). ``present``: both, only A, only B. ``ratio``: median B / median A.
``p_value``: two-sided Mann-Whitney U on the raw latencies; ``p_adjusted``: Holm-corrected
over the matched points; ``significant``: p_adjusted < alpha; ``change``: slower, faster or
same (B against A; "same" when not significant). Statistics are NaN for points present in
one run only."""
MATCHED_BY = ["config_key", "cache_state", "embedding_precision", "dense_precision"]


def _timing_points(store: ResultStore, run_id: str, platform: str | None) -> pd.DataFrame:
    from recstack.analysis.select import PRECISION_COLUMNS, measuring_platform, point_columns

    only = "" if platform is None else " AND COALESCE(pt.platform_id, r.platform_id) = ?"
    read = ", ".join(point_columns(names=["cache_state", *PRECISION_COLUMNS]))
    return store.query(f"""
        SELECT pt.point_key, pt.config_key, pt.model, pt.row_scale, pt.batch_size, pt.device,
               pt.threads, pt.backend, {read},
               pt.method_version, t.median_ms, {measuring_platform()}
        FROM points pt JOIN timing t USING (run_id, point_key) JOIN runs r USING (run_id)
        WHERE pt.run_id = ? AND pt.status = 'ok' AND pt.level = 'timing'{only}
    """, [run_id] if platform is None else [run_id, platform])


def run_platform_ids(store: ResultStore, run_id: str) -> list[str]:
    """The platforms that measured the run's points (failed ones too), sorted; the run's own
    platform when it has no point yet."""
    frame = store.query("""
        SELECT DISTINCT COALESCE(pt.platform_id, r.platform_id) AS platform_id
        FROM runs r LEFT JOIN points pt USING (run_id) WHERE r.run_id = ?
        ORDER BY platform_id
    """, [run_id])
    return [str(p) for p in frame.platform_id.dropna()]


def check_platform(store: ResultStore, run_id: str, platform: str | None, flag: str) -> None:
    """Raises RecstackError (naming ``flag``) when ``platform`` measured no point of the run."""
    if platform is None:
        return
    known = run_platform_ids(store, run_id)
    if platform not in known:
        raise RecstackError(f"{flag}: {shown(platform)} is not a platform of run {run_id}; "
                            f"its points were measured on {', '.join(known) or 'none'}")


def mixed_sides(store: ResultStore, run_a: str, run_b: str, platform_a: str | None = None,
                platform_b: str | None = None) -> dict[str, list[str]]:
    """The sides (``A``, ``B``) that span several platforms with none named, each with its
    platforms: :func:`compare_runs` matches their points platform by platform."""
    sides = {"A": (run_a, platform_a), "B": (run_b, platform_b)}
    spans = {side: run_platform_ids(store, run) for side, (run, named) in sides.items()
             if named is None}
    return {side: platforms for side, platforms in spans.items() if len(platforms) > 1}


def run_precisions(store: ResultStore, run_id: str, platform: str | None = None
                   ) -> list[str]:
    """The precisions (``Precision.label``, fp32 first) of the run's measured timing points
    (those ``platform`` measured, when named)."""
    from recstack.analysis.systems import precisions_of

    return precisions_of(_timing_points(store, run_id, platform))


def precision_warnings(store: ResultStore, run_a: str, run_b: str,
                       platform_a: str | None = None, platform_b: str | None = None
                       ) -> list[str]:
    """One line when the two sides' timing points were measured in different precisions:
    points are matched precision by precision, so a precision one side lacks matches
    nothing."""
    a = run_precisions(store, run_a, platform_a)
    b = run_precisions(store, run_b, platform_b)
    if a == b or not a or not b:
        return []
    shared = [label for label in a if label in b]
    return [f"the runs were measured in different precisions (A: {', '.join(a)}; B: "
            f"{', '.join(b)}): points are matched precision by precision, "
            + (f"so only the {', '.join(shared)} points are compared" if shared else
               "and no point of one is set against a point of the other")
            + "; `recstack report` compares precisions within a run"]


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


def platform_warnings(store: ResultStore, run_a: str, run_b: str,
                      platform_a: str | None = None, platform_b: str | None = None
                      ) -> list[str]:
    """One line per side of :func:`mixed_sides`: its points are matched platform by
    platform, and how to name one."""
    lines = []
    for side, platforms in mixed_sides(store, run_a, run_b, platform_a, platform_b).items():
        run = run_a if side == "A" else run_b
        lines.append(f"run {run} (side {side}) spans {len(platforms)} platforms "
                     f"({', '.join(platforms)}): its points are matched platform by "
                     f"platform; name one with --platform-{side.lower()} to compare across "
                     "platforms")
    return lines


def compare_runs(store: ResultStore, run_a: str, run_b: str, alpha: float = 0.05,
                 platform_a: str | None = None, platform_b: str | None = None
                 ) -> pd.DataFrame:
    """Every timing point of either run, matched by configuration (columns
    COMPARISON_COLUMNS), matched points first, in the zoo's model order.

    ``platform_a`` / ``platform_b`` keep only the side's points measured on that platform
    (``run_b`` may then be ``run_a``); an unknown one raises RecstackError. Where a side
    spans several platforms and none was named (:func:`mixed_sides`), points are matched by
    platform too (MATCHED_BY + ``platform_id``)."""
    from scipy.stats import mannwhitneyu
    from statsmodels.stats.multitest import multipletests

    from recstack.analysis.systems import order_models, precision_rank

    if not 0 < alpha < 1:
        raise RecstackError(f"--alpha: {alpha!r} is not allowed; expected a number between 0 "
                            "and 1 (e.g. 0.05)")
    check_runs(store, run_a, run_b)
    check_platform(store, run_a, platform_a, "--platform-a")
    check_platform(store, run_b, platform_b, "--platform-b")
    a, b = _timing_points(store, run_a, platform_a), _timing_points(store, run_b, platform_b)
    descriptive = ["config_key", "model", "row_scale", "batch_size", "device", "threads",
                   "backend"]
    # Each side keeps its measuring platform (platform_a, platform_b after the merge); it is
    # a key only where a side would otherwise set two machines' points against one.
    a, b = a.assign(platform=a.platform_id), b.assign(platform=b.platform_id)
    mixed = mixed_sides(store, run_a, run_b, platform_a, platform_b)
    key = [*MATCHED_BY, "platform_id"] if mixed else MATCHED_BY
    if not mixed:
        a, b = a.drop(columns="platform_id"), b.drop(columns="platform_id")
    merged = a.merge(b, on=key, how="outer", suffixes=("_a", "_b"), indicator=True)
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
                     "embedding_precision": row.embedding_precision,
                     "dense_precision": row.dense_precision,
                     "cache_state": row.cache_state, "platform_a": row.platform_a,
                     "platform_b": row.platform_b, "present": row.present,
                     "samples_a": 0 if xs is None else len(xs),
                     "samples_b": 0 if ys is None else len(ys),
                     "median_a_ms": row.median_ms_a, "median_b_ms": row.median_ms_b,
                     "ratio": row.median_ms_b / row.median_ms_a, "p_value": p_value})
    frame = pd.DataFrame(rows, columns=COMPARISON_COLUMNS[:COMPARISON_COLUMNS.index(
        "p_value") + 1])
    tested = frame.p_value.notna()
    frame["p_adjusted"] = np.nan
    if tested.any():
        frame.loc[tested, "p_adjusted"] = multipletests(frame.p_value[tested], alpha=alpha,
                                                        method="holm")[1]
    frame["significant"] = frame.p_adjusted < alpha
    frame["change"] = np.select([~tested, ~frame.significant, frame.ratio > 1],
                                [MISSING, "same", "slower"], "faster")
    frame = frame.assign(_both=frame.present != "both").sort_values(
        ["_both", "batch_size", "device", "threads", "backend", "embedding_precision",
         "dense_precision", "cache_state", "platform_a", "platform_b"],
        key=precision_rank).drop(columns="_both")
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


def run_platforms(store: ResultStore, run_a: str, run_b: str, platform_a: str | None = None,
                  platform_b: str | None = None) -> pd.DataFrame:
    """The two sides' platforms, one row each (A, then B; one run may be both sides):
    the platform named for the side, else the run's own. Columns: run, run_id, platform_id,
    description, started_at."""
    check_runs(store, run_a, run_b)
    rows = []
    for side, run_id, named in (("A", run_a, platform_a), ("B", run_b, platform_b)):
        frame = store.query("""
            SELECT r.run_id, COALESCE(?, r.platform_id) AS platform_id, p.description,
                   r.started_at
            FROM runs r LEFT JOIN platforms p ON p.platform_id = COALESCE(?, r.platform_id)
            WHERE r.run_id = ?
        """, [named, named, run_id])
        rows.append(frame.assign(run=side))
    return pd.concat(rows, ignore_index=True)[["run", "run_id", "platform_id", "description",
                                               "started_at"]]
