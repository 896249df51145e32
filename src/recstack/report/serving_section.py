"""The report's serving section: each deployment of a model served under MLPerf LoadGen, its
latency-bounded throughput, the latency curves behind it, and the tuned deployment against
the baseline. It renders the frames of :mod:`recstack.analysis.serving`.

Serving is measured only on request (``recstack serve``): a report of runs without serving
points has no serving section at all (the builder returns None), rather than a "not
measured" one in every report.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pandas as pd

from recstack.report.sections import (
    ReportContext,
    Section,
    Table,
    figures_from,
    table_from_frame,
)
from recstack.text import MISSING

TITLE = "Serving: latency-bounded throughput under MLPerf LoadGen"
MIB = 2**20


def serving_section(context: ReportContext) -> Section | None:
    from recstack.analysis.serving import tuned_vs_baseline

    serving = context.serving
    if serving.empty:
        return None
    section = Section("serving", TITLE)
    _figures(context, section)
    tuned = tuned_vs_baseline(serving, tuned_only=True)
    section.headline = _headline(serving, tuned)
    section.tables += _deployment_tables(context)
    if tuned.empty:
        section.notes.append("No model was tuned in these runs (`recstack serve --tune` "
                             "measures the baseline and the tuner's deployments).")
    else:
        section.tables.append(_tuned_table(context, tuned))
    if not context.serving_tests.empty:
        section.tables.append(_tests_table(context))
    section.notes += methodology(serving)
    section.notes += _search_notes(serving)
    return section


CAPTIONS = {
    "serving_latency_vs_qps": "LoadGen's tail latency of every Server test against its "
    "offered Poisson rate, one line per deployment; hollow: INVALID; triangle: the knee; "
    "star: the latency-bounded QPS (the highest offered rate judged VALID); dotted: the "
    "latency bound.",
    "serving_tuned_vs_baseline": "Latency-bounded QPS of the baseline (one single-threaded "
    "engine per core, requests never split) and of the best deployment measured, per "
    "model tuned; the gain is written on the tuned bar.",
}


def _figures(context: ReportContext, section: Section) -> None:
    """One set of figures per platform (two platforms never share a panel), each model a
    panel; a model several runs of the platform measured gets a panel per run."""
    from recstack.report.serving_plots import write_serving_figures

    tests = context.serving_tests
    platforms = list(dict.fromkeys(context.serving.platform_id))
    for platform in platforms:
        rows = context.serving[context.serving.platform_id == platform].copy()
        runs_of = rows.groupby("model").run_id.transform("nunique")
        rows["model"] = [f"{r.model} ({r.run_id})" if n > 1 else r.model
                         for r, n in zip(rows.itertuples(), runs_of)]
        own = tests[tests.run_id.isin(rows.run_id)] if not tests.empty else tests
        label = f"platform {platform}" if len(platforms) > 1 else ""
        figures = figures_from(
            lambda directory, rows=rows, own=own: write_serving_figures(rows, own, directory),
            label=label)
        section.figures += [replace(figure, caption=CAPTIONS.get(figure.name, ""))
                            for figure in figures]


def _headline(serving: pd.DataFrame, tuned: pd.DataFrame) -> str:
    from recstack.analysis.serving import best_deployments

    if not tuned.empty:
        return "Tuned over baseline latency-bounded QPS: " + ", ".join(
            _gain_text(row) for row in tuned.itertuples())
    best = best_deployments(serving)
    if best.empty:
        return "No deployment met its latency bound at any offered rate tested."
    return "Highest latency-bounded QPS: " + ", ".join(
        f"{r.model} {r.latency_bounded_qps:,.0f} at p{r.percentile:g} <= {r.target_ms:g} ms "
        f"({r.deployment})" for r in best.itertuples())


def _gain_text(row: Any) -> str:
    gain = f"{row.gain:.2f}x" if _known(row.gain) else f"{MISSING} (the baseline met no rate)"
    kept = "baseline kept, " if row.tuned_key == row.baseline_key else ""
    return f"{row.model} {gain} ({kept}best of {row.deployments} deployments)"


def _deployment_tables(context: ReportContext) -> list[Table]:
    from recstack.analysis.serving import deployment_table

    table = deployment_table(context.serving, context.serving_tests)
    table = table.assign(
        target=[f"p{r.percentile:g} <= {r.target_ms:g} ms" for r in table.itertuples()],
        peak_mib=table.peak_memory_bytes.astype("Float64") / MIB,
        model_mib=table.model_bytes.astype("Float64") / MIB,
        bounded=[_rate(value) for value in table.latency_bounded_qps],
        capacity=[_rate(value) for value in table.capacity_qps],
        knee=[_rate(value) for value in table.knee_qps])
    tables = []
    for (run_id, model), rows in table.groupby(["run_id", "model"], sort=False):
        scale = rows.row_scale.iloc[0]
        title = (f"{model}{'' if scale == 1 else f' (rows x{scale:g})'}: deployments"
                 + (f" (run {run_id})" if len(context.run_ids) > 1 else ""))
        tables.append(table_from_frame(
            rows, title,
            {"deployment": "deployment", "role": "role", "backend": "backend",
             "target": "target", "bounded": "latency-bounded QPS",
             "capacity": "offline capacity QPS", "tests": "LoadGen tests",
             "knee": "knee QPS", "peak_mib": "peak memory MiB",
             "model_mib": "model MiB", "memory_over_model": "peak / model"},
            {"peak_mib": "num", "model_mib": "num", "memory_over_model": "x"},
            "latency-bounded QPS: the highest offered Poisson rate LoadGen judged VALID "
            "(none: no rate tested was); offline capacity: queries/s completed in the "
            "Offline test that started the search; knee: see the notes; peak memory: the "
            "serving process and its engines together (shared pages once), the model's "
            "tables counted once. Flagged: the search did not close its bracket.",
            ["flag" if _unclosed(r) else ("best" if "tuned" in r.role else "")
             for r in rows.itertuples()]))
    return tables


def _rate(value: Any) -> str:
    return f"{value:,.0f}" if _known(value) else "none"


def _known(value: Any) -> bool:
    return value is not None and not pd.isna(value)


def _unclosed(row: Any) -> bool:
    """The point's search left its rate unbracketed, or found no VALID rate."""
    return not _known(row.latency_bounded_qps) or (
        _known(row.converged) and not bool(row.converged))


def _tuned_table(context: ReportContext, tuned: pd.DataFrame) -> Table:
    shown = tuned.assign(
        target=[f"p{r.percentile:g} <= {r.target_ms:g} ms" for r in tuned.itertuples()],
        base=[_rate(value) for value in tuned.baseline_qps],
        best=[_rate(value) for value in tuned.tuned_qps],
        kept=["yes" if r.tuned_key == r.baseline_key else "no" for r in tuned.itertuples()],
        ratio=[MISSING if pd.isna(g) else f"{g:.2f}x" for g in tuned.gain])
    columns = {"model": "model", "target": "target", "baseline": "baseline",
               "base": "baseline QPS", "tuned": "tuned", "best": "tuned QPS",
               "ratio": "gain", "kept": "baseline kept",
               "deployments": "deployments measured"}
    if len(context.run_ids) > 1:
        columns = {"run_id": "run", **columns}
    return replace(table_from_frame(
        shown, "Tuned deployment against the baseline", columns, {},
        "baseline: one single-threaded engine per core, requests never split, nothing "
        "offloaded; tuned: the deployment with the highest latency-bounded QPS measured "
        "(on a tie, the baseline). gain: tuned over baseline QPS (n/a where the baseline "
        "met no rate)."), row_classes=["best" if g is not None and pd.notna(g) and g > 1
                                       else "" for g in tuned.gain])


def _tests_table(context: ReportContext) -> Table:
    from recstack.analysis.serving import deployment_label

    tests = context.serving_tests
    shown = tests.assign(
        deployment=[deployment_label(row) for _, row in tests.iterrows()],
        offered=[_rate(v) for v in tests.offered_qps],
        achieved=[_rate(v) for v in tests.achieved_qps])
    return replace(table_from_frame(
        shown, "Every LoadGen test",
        {"model": "model", "deployment": "deployment", "test": "test", "role": "role",
         "scenario": "scenario", "offered": "offered QPS", "achieved": "achieved QPS",
         "p50_ms": "p50 ms", "p95_ms": "p95 ms", "p99_ms": "p99 ms", "verdict": "verdict"},
        {"p50_ms": "ms", "p95_ms": "ms", "p99_ms": "ms"},
        "Latencies are LoadGen's. role: capacity (the Offline estimate), search (a rate the "
        "search tried) or given (a rate asked for).",
        ["" if _known(valid) and bool(valid) else "flag" for valid in tests.valid]),
        collapsed=True)


def methodology(serving: pd.DataFrame) -> list[str]:
    """How the serving points were measured, from what they recorded."""
    from recstack.analysis.serving import KNEE_FACTOR

    versions = ", ".join(sorted(set(serving.loadgen_version.dropna()))) or "not recorded"
    scenarios = ", ".join(sorted(set(serving.scenario)))
    sizes = "; ".join(sorted({f"{r.query_sizes} (mean {r.mean_items:.3g} items, at most "
                              f"{r.max_items})" for r in serving.itertuples()}))
    cores = "; ".join(f"{r.engines} x {r.threads} thread(s): {r.cores}" for r in
                      serving.drop_duplicates(["engines", "threads", "cores"]).itertuples())
    return [
        f"MLPerf LoadGen {versions}, scenario {scenarios}: queries arrive as a Poisson "
        "process at each offered rate; a test is VALID when the latency percentile meets "
        "the bound and LoadGen's minimum duration, minimum query count and early-stopping "
        "estimate are met. Every latency shown is LoadGen's, from a query's scheduled "
        "issue to its completion (queueing included). Request sizes (candidate items per "
        f"query): {sizes}.",
        "A serving point is one deployment: its engines (separate inference processes) "
        "are each pinned to their own cores and share one copy of the model's tables; a "
        "request is cut into sub-batches spread over the engines (whole where the "
        "sub-batch is at least the largest request). The search: an Offline test "
        "estimates the capacity, then Server tests at offered rates bracket the highest "
        f"VALID rate, the latency-bounded QPS. Cores of the engines (| between engines): "
        f"{cores}.",
        "Baseline: one single-threaded engine per core, requests never split; tuned: the "
        "best deployment measured (DeepRecSched's hill climb over engines x threads and "
        "the sub-batch size), never one below the baseline. Knee: the highest offered "
        f"rate whose tail latency stays within {KNEE_FACTOR:g}x the tail at the lowest "
        "rate tested (past it queueing dominates).",
    ]


def _search_notes(serving: pd.DataFrame) -> list[str]:
    from recstack.analysis.serving import deployment_label

    notes = []
    for _, row in serving.iterrows():
        if _unclosed(row):
            how = row.search_note if isinstance(row.search_note, str) else "not recorded"
            notes.append(f"{row.model}, {deployment_label(row)}: the search ended "
                         f"unbracketed ({how}; latency-bounded QPS "
                         f"{_rate(row.latency_bounded_qps)}, lowest INVALID rate "
                         f"{_rate(row.lowest_invalid_qps)}).")
    return notes
