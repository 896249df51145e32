"""The fleet: one run (or several) measured on several machines, with the platform as a
dimension of every view.

A run on a cluster measures its points on several platforms (``points.platform_id``; a
point stored before that column was measured on its run's platform: see
``select.measuring_platform``). No statistic here mixes machines without saying so: every
frame is keyed by ``platform_id``, and the cross-platform views (:func:`best_platform`)
compare machines only where each measured the same model, table size, batch size, precision
and cache state. Every view (all but :func:`platforms_of`, a list) is a DataFrame whose
columns its docstring (or the named constant) lists; the report's fleet section
(``report/fleet_section.py``) renders them.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from recstack.analysis.findings import (
    FINDING_COLUMNS,
    Evidence,
    Findings,
    check_findings,
)
from recstack.analysis.systems import (PRECISION_COLUMNS, order_models, precision_rank,
                                       prefer_cold, with_precision)
from recstack.text import MISSING

POINT_PLATFORM_COLUMNS = ["run_id", "point_key", "level", "status", "platform_id", "platform"]
PLATFORM_SUMMARY_COLUMNS = ["platform_id", "platform", "runs", "points", "timing_points",
                            "failed_points"]
PER_PLATFORM_COLUMNS = ["model", "row_scale", "batch_size", "device", "threads", "backend",
                        *PRECISION_COLUMNS, "cache_state", "platform_id", "platform", "points",
                        "median_ms", "p95_ms", "throughput_per_s"]
# What two platforms must share before their latencies are set side by side.
COMPARABLE = ["model", "row_scale", "batch_size", *PRECISION_COLUMNS, "cache_state"]
PLATFORM_BEST_COLUMNS = [*COMPARABLE, "platform_id", "platform", "deployment", "median_ms",
                         "p95_ms", "throughput_per_s"]
BEST_PLATFORM_COLUMNS = [*COMPARABLE, "platforms", "best_platform_id", "best_platform",
                         "best_deployment", "best_median_ms", "runner_up_platform_id",
                         "runner_up_platform", "runner_up_deployment", "runner_up_median_ms",
                         "ratio"]
FLEET_FINDING_COLUMNS = ["platform_id", "platform", *FINDING_COLUMNS]


def load_point_platforms(store: Any, run_ids: list[str] | None = None) -> pd.DataFrame:
    """Every point of the runs (all runs when None), failed ones too, with the machine that
    measured it: columns POINT_PLATFORM_COLUMNS (``platform``: its description)."""
    from recstack.analysis.select import measuring_platform, run_filter

    runs, parameters = run_filter(run_ids)
    return store.query(f"""
        SELECT pt.run_id, pt.point_key, pt.level, pt.status, {measuring_platform()},
               pl.description AS platform
        FROM points pt JOIN runs r USING (run_id)
        LEFT JOIN platforms pl ON pl.platform_id = COALESCE(pt.platform_id, r.platform_id)
        WHERE TRUE{runs}
        ORDER BY pt.run_id, pt.point_key
    """, parameters)[POINT_PLATFORM_COLUMNS]


def platforms_of(frame: pd.DataFrame) -> list[str]:
    """The distinct platforms of a frame with a ``platform_id`` column (a timing frame, a
    view of this module), sorted by id: the same order whatever order the rows come in.
    Empty for a frame without the column."""
    if "platform_id" not in frame.columns:
        return []
    return sorted(str(p) for p in frame.platform_id.dropna().unique())


def _descriptions(frame: pd.DataFrame) -> dict[str, Any]:
    """platform_id -> description, from a frame's ``platform`` column (None without one)."""
    if "platform" not in frame.columns:
        return {}
    known = frame.dropna(subset=["platform_id"]).drop_duplicates("platform_id")
    return dict(zip(known.platform_id.astype(str), known.platform))


def platform_summary(point_platforms: pd.DataFrame) -> pd.DataFrame:
    """One row per platform of :func:`load_point_platforms`' frame (:func:`platforms_of`'s
    order): its description, the runs it measured points of, its measured points (every
    level), of them timing points, and its failed points. Columns PLATFORM_SUMMARY_COLUMNS."""
    rows = []
    described = _descriptions(point_platforms)
    for platform in platforms_of(point_platforms):
        own = point_platforms[point_platforms.platform_id == platform]
        ok = own[own.status == "ok"]
        rows.append({"platform_id": platform, "platform": described.get(platform),
                     "runs": own.run_id.nunique(), "points": len(ok),
                     "timing_points": int((ok.level == "timing").sum()),
                     "failed_points": int((own.status != "ok").sum())})
    return pd.DataFrame(rows, columns=PLATFORM_SUMMARY_COLUMNS)


def per_platform_latency(timings: pd.DataFrame) -> pd.DataFrame:
    """One row per configuration and platform: (model, row_scale, batch_size, device,
    threads, backend, embedding_precision, dense_precision, cache_state, platform_id), with
    the platform's description (``platform``), ``points`` (how many points measured it:
    several runs may have), the median latency and p95 (ms; the median of the points' own
    where several did) and
    ``throughput_per_s`` (batch_size over the median, in samples per second). Columns
    PER_PLATFORM_COLUMNS, in the order of every table of points, then by platform."""
    if timings.empty:
        return pd.DataFrame(columns=PER_PLATFORM_COLUMNS)
    key = PER_PLATFORM_COLUMNS[:PER_PLATFORM_COLUMNS.index("platform_id") + 1]
    table = with_precision(timings).groupby(key, as_index=False, dropna=False).agg(
        points=("median_ms", "size"), median_ms=("median_ms", "median"),
        p95_ms=("p95_ms", "median"))
    table["platform"] = table.platform_id.astype(str).map(_descriptions(timings))
    table["throughput_per_s"] = table.batch_size / (table.median_ms / 1e3)
    return _in_point_order(table, ["device", "threads", "backend", *PRECISION_COLUMNS,
                                   "cache_state", "platform_id"])[PER_PLATFORM_COLUMNS]


def best_per_platform(timings: pd.DataFrame) -> pd.DataFrame:
    """Per model, row_scale, batch size, precision, cache state and platform: the platform's
    fastest deployment there (lowest median latency over its devices, thread counts and backends),
    as ``deployment`` ("cpu t4 eager"), with its median_ms, p95_ms and throughput_per_s. A
    configuration measured cold and warm counts by its cold point (``systems.prefer_cold``).
    Columns PLATFORM_BEST_COLUMNS. What the fleet figure draws: one line per platform."""
    if timings.empty:
        return pd.DataFrame(columns=PLATFORM_BEST_COLUMNS)
    points = with_precision(prefer_cold(timings))
    points = points[points.median_ms.notna()]
    fastest = points.loc[points.groupby([*COMPARABLE, "platform_id"], dropna=False)
                         .median_ms.idxmin()]
    table = fastest.assign(
        platform=fastest.platform_id.astype(str).map(_descriptions(timings)),
        deployment=[f"{r.device} t{r.threads} {r.backend}" for r in fastest.itertuples()])
    return _in_point_order(table, [*PRECISION_COLUMNS, "cache_state", "platform_id"])[
        PLATFORM_BEST_COLUMNS]


def best_platform(timings: pd.DataFrame) -> pd.DataFrame:
    """Which machine serves each model and batch size fastest. Per model, row_scale, batch
    size, precision and cache state (cold points preferred, as everywhere: ``systems.prefer_cold``),
    of each platform's fastest deployment (:func:`best_per_platform`): the platform with the
    lowest median latency (``best_*``), the runner-up (``runner_up_*``), ``ratio`` (the
    runner-up's median over the best's: how much the best machine gains) and ``platforms``
    (how many platforms measured it). Only what 2 or more platforms measured is ranked: a
    configuration one machine measured has no best and no row; a model measured at another
    table size, precision or cache state on each machine is never set against itself. Columns
    BEST_PLATFORM_COLUMNS, in the zoo's model order, then batch size."""
    per_platform = best_per_platform(timings)
    rows = []
    for key, group in per_platform.groupby(COMPARABLE, sort=False, dropna=False):
        if len(group) < 2:
            continue
        ranked = group.sort_values(["median_ms", "platform_id"], kind="stable")
        best, runner_up = ranked.iloc[0], ranked.iloc[1]
        rows.append({**dict(zip(COMPARABLE, key)), "platforms": len(group),
                     "best_platform_id": best.platform_id, "best_platform": best.platform,
                     "best_deployment": best.deployment, "best_median_ms": best.median_ms,
                     "runner_up_platform_id": runner_up.platform_id,
                     "runner_up_platform": runner_up.platform,
                     "runner_up_deployment": runner_up.deployment,
                     "runner_up_median_ms": runner_up.median_ms,
                     "ratio": runner_up.median_ms / best.median_ms})
    table = pd.DataFrame(rows, columns=BEST_PLATFORM_COLUMNS)
    return _in_point_order(table, [*PRECISION_COLUMNS, "cache_state"])


def _in_point_order(frame: pd.DataFrame, then: list[str]) -> pd.DataFrame:
    """Rows by model (the zoo's order), row_scale, batch size, then ``then`` (precisions
    fp32 first)."""
    ordered = frame.sort_values(["row_scale", "batch_size", *then], kind="stable",
                                key=precision_rank)
    return order_models(ordered)


# ---- the paper's findings, machine by machine -----------------------------------------------


def findings_by_platform(evidence: Evidence, point_platforms: pd.DataFrame,
                         findings: Findings | None = None) -> pd.DataFrame:
    """The paper's findings (``findings.check_findings``) checked on each platform's points
    alone: per platform of ``point_platforms``' measured points (:func:`platforms_of`'s
    order), the evidence frames kept to the points that platform measured (timings and
    serving by their ``platform_id``; operator shares and hardware points by their
    (run_id, point_key) in ``point_platforms``). The feature-bottleneck correlation is one
    analysis over a whole design space, not a platform's: it is left out (its finding reads
    "not measured" here). Columns FLEET_FINDING_COLUMNS (``platform``: the description)."""
    measured = point_platforms[point_platforms.status == "ok"]
    described = _descriptions(measured)
    tables = []
    for platform in platforms_of(measured):
        own = measured[measured.platform_id == platform][["run_id", "point_key"]]
        alone = Evidence(timings=_platform_rows(evidence.timings, platform),
                         shares=_measured_by(evidence.shares, own),
                         hardware=_measured_by(evidence.hardware, own), dominance=None,
                         targets=evidence.targets,
                         serving=None if evidence.serving is None
                         else _platform_rows(evidence.serving, platform))
        tables.append(check_findings(alone, findings).assign(
            platform_id=platform, platform=described.get(platform)))
    if not tables:
        return pd.DataFrame(columns=FLEET_FINDING_COLUMNS)
    return pd.concat(tables, ignore_index=True)[FLEET_FINDING_COLUMNS]


def findings_per_platform(store: Any, run_ids: list[str] | None = None) -> pd.DataFrame:
    """:func:`findings_by_platform` of the store's runs ``run_ids`` (all runs when None):
    ``findings.load_evidence`` and :func:`load_point_platforms` of them."""
    from recstack.analysis.findings import load_evidence

    return findings_by_platform(load_evidence(store, run_ids),
                                load_point_platforms(store, run_ids))


def findings_grid(per_platform: pd.DataFrame) -> pd.DataFrame:
    """:func:`findings_by_platform`'s frame with one row per finding (id, level, statement,
    in the findings' order) and one column per platform (its id, :func:`platforms_of`'s
    order), each cell the status there and the number measured ("holds (3.2x)"; the status
    alone where nothing was measured)."""
    platforms = platforms_of(per_platform)
    findings = per_platform.drop_duplicates("id")[["id", "level", "statement"]]
    cells = {(row.id, row.platform_id): row.status if row.measured == MISSING
             else f"{row.status} ({row.measured})" for row in per_platform.itertuples()}
    grid = findings.assign(**{platform: [cells.get((finding, platform))
                                         for finding in findings.id]
                              for platform in platforms})
    return grid.reset_index(drop=True)


def _platform_rows(frame: pd.DataFrame, platform: str) -> pd.DataFrame:
    if frame.empty or "platform_id" not in frame.columns:
        return frame
    return frame[frame.platform_id == platform]


def _measured_by(frame: pd.DataFrame, points: pd.DataFrame) -> pd.DataFrame:
    """The rows of ``frame`` (one or more per point) whose point is among ``points``
    (run_id, point_key)."""
    if frame.empty:
        return frame
    wanted = pd.MultiIndex.from_frame(points[["run_id", "point_key"]])
    return frame[pd.MultiIndex.from_frame(frame[["run_id", "point_key"]]).isin(wanted)]
