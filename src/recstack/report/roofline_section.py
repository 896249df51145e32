"""The report's roofline section: every CPU timing point against the machine's measured
ceilings, with its efficiency (roofline bound / measured latency)."""

from __future__ import annotations

from dataclasses import replace

import pandas as pd

from recstack.report.sections import (ReportContext, Section, by_run, cell, figures_from,
                                      grid_table, not_measured, table_from_frame)

TITLE = "Efficiency: measured latency against the roofline bound"
DRIFT_WARNING_MINUTES = 60
# The batch sizes from which the headline quotes each model's best efficiency.
LARGE_BATCH = 1024


def roofline_section(context: ReportContext) -> Section:
    from recstack.analysis.roofline import roofline_view
    from recstack.analysis.systems import prefer_cold, sort_points
    from recstack.analysis.views import batch_grid, best_efficiency
    from recstack.report.roofline import plot_roofline

    how = ("Measure the machine's ceilings with `recstack ceilings` (per thread count); the "
           "report then sets every CPU timing point against them.")
    if context.timings.empty:
        return not_measured("roofline", TITLE, how)
    # Each run is set against the ceilings measured nearest to it; its figures draw them.
    view = roofline_view(context.store, context.run_ids)
    if view.table.empty:
        return not_measured("roofline", TITLE,
                            " ".join([how, "; ".join(view.problems)]).strip())
    table = view.table
    section = Section("roofline", TITLE)
    for label, rows in by_run(context, table):
        ceilings = view.ceilings[rows.run_id.iloc[0]]
        for (platform, threads), group in rows.groupby(["platform_id", "threads"]):
            roofs = ceilings[(ceilings.platform_id == platform) & (ceilings.threads == threads)]
            section.figures += figures_from(
                lambda directory, group=group, roofs=roofs: plot_roofline(
                    group, roofs, directory / "roofline.png"),
                f"Operational intensity vs attained GFLOP/s, {threads} threads, under the "
                "measured roofs", " ".join(filter(None, [label, f"{threads} threads"])))
    best = best_efficiency(table, LARGE_BATCH)
    if not best.empty:
        section.headline = (f"best efficiency at batch >= {LARGE_BATCH}: " + ", ".join(
            f"{model} {value:.0%}" for model, value in zip(best.model, best.efficiency))
            + " (cold points where a configuration has both)")
    section.tables.append(grid_table(
        batch_grid(prefer_cold(table), ["efficiency", "limiting_stage"]),
        "Efficiency (roofline bound / measured) per model and batch size",
        lambda point: f"{cell(point['efficiency'], 'pct')} {cell(point['limiting_stage'])}",
        "Each cell: the efficiency and the stage that limits the bound (detail below).",
        {"model": "model", "run_id": "run", "device": "device", "threads": "threads",
         "backend": "backend", "cache_state": "cache", "embedding_precision": "tables",
         "dense_precision": "dense layers"}))
    table = sort_points(table)
    section.tables.append(replace(table_from_frame(
        table, "Roofline bound and efficiency per point",
        {"model": "model", "batch_size": "batch", "threads": "threads", "backend": "backend",
         "cache_state": "cache",
         "measured_ms": "measured ms", "bound_ms": "bound ms", "efficiency": "efficiency",
         "limiting_stage": "limiting stage", "limit": "limit",
         "rows_resident": "rows fit LLC", "overhead_share_low": "overhead (low)",
         "overhead_share_high": "overhead (high)", "overhead_basis": "overhead from",
         "ceilings_offset_minutes": "ceilings measured (min from run)",
         **(PRECISION_HEADERS if _several_precisions(table) else {})},
        {"measured_ms": "ms", "bound_ms": "ms", "efficiency": "pct",
         "ceilings_offset_minutes": "num",
         "overhead_share_low": "pct", "overhead_share_high": "pct"},
        "Bound: each stage's larger of compute and memory time at the measured ceilings, "
        "summed over stages; gathers at the bandwidth measured for tables of each table's "
        "size and for runs of the ids each batch reads from it, or at the cached rate where "
        "the rows of every batch the timing loop cycles through fit in the LLC (rows fit "
        "LLC). Overhead: time outside any operator, bracketed because the measuring "
        "tool's own cost cannot be split between inside and outside operators: the "
        "operator clock (about 0.1 us per operator) where it ran, else the profiler "
        "(docs/performance.md)."), collapsed=True))
    section.notes += [_ceilings_note(choice.run_id, choice)
                      for choice in view.chosen.itertuples(index=False)]
    section.notes += view.problems
    return section


def _ceilings_note(run_id: str, choice: object) -> str:
    """Which stored ceilings judged the run, and how far from it they were measured."""
    offset = choice.offset_minutes
    if offset != offset:
        when = "(the run's time is unknown: the newest set)"
    elif offset == 0:
        when = "during the run"
    else:
        when = f"{abs(offset):.0f} min {'after the run ended' if offset > 0 else 'before it began'}"
    note = (f"run {run_id}, {choice.threads} thread(s): ceilings measured "
            f"{choice.measured_from:%Y-%m-%d %H:%M} UTC, {when}; nearest of "
            f"{choice.sets_stored} stored set(s)")
    if offset == offset and abs(offset) > DRIFT_WARNING_MINUTES:
        note += (". Bandwidths drift within minutes on shared machines: measure ceilings "
                 "beside the run (`recstack ceilings --refresh` before or after it) for a "
                 "trustworthy efficiency")
    return note


PRECISION_HEADERS = {"embedding_precision": "tables", "dense_precision": "dense layers",
                     "ceiling_basis": "ceilings of"}


def _several_precisions(table: pd.DataFrame) -> bool:
    """Whether the points span more than one precision (only then do they name it)."""
    columns = [c for c in ("embedding_precision", "dense_precision") if c in table.columns]
    return bool(columns) and len(table[columns].drop_duplicates()) > 1
