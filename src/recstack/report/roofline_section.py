"""The report's roofline section: every CPU timing point against the machine's measured
ceilings, with its efficiency (roofline bound / measured latency)."""

from __future__ import annotations

from recstack.errors import RecstackError
from recstack.report.sections import (ReportContext, Section, by_run, figures_from,
                                      not_measured, table_from_frame)

TITLE = "Efficiency: measured latency against the roofline bound"


def roofline_section(context: ReportContext) -> Section:
    import pandas as pd

    from recstack.analysis.roofline import roofline_table
    from recstack.report.roofline import plot_roofline

    how = ("Measure the machine's ceilings with `recstack ceilings` (per thread count); the "
           "report then sets every CPU timing point against them.")
    if context.timings.empty:
        return not_measured("roofline", TITLE, how)
    ceilings = context.store.load_ceilings()
    tables, notes = [], []
    for run_id in context.run_ids:
        try:
            tables.append(roofline_table(context.store, run_id, ceilings))
        except RecstackError as error:
            notes.append(f"run {run_id}: {error}")
    tables = [t for t in tables if t.bound_ms.notna().any()]
    if not tables:
        return not_measured("roofline", TITLE, how + (" " + "; ".join(notes) if notes else ""))
    table = pd.concat(tables, ignore_index=True)
    section = Section("roofline", TITLE)
    for label, rows in by_run(context, table):
        for (platform, threads), group in rows.groupby(["platform_id", "threads"]):
            roofs = ceilings[(ceilings.platform_id == platform) & (ceilings.threads == threads)]
            section.figures += figures_from(
                lambda directory, group=group, roofs=roofs: plot_roofline(
                    group, roofs, directory / "roofline.png"),
                f"Operational intensity vs attained GFLOP/s, {threads} threads, under the "
                "measured roofs", " ".join(filter(None, [label, f"{threads} threads"])))
    large = table[table.batch_size >= 1024]
    if not large.empty and large.efficiency.notna().any():
        best = large.groupby("model").efficiency.max()
        section.headline = ("best efficiency at batch >= 1024: " + ", ".join(
            f"{model} {value:.0%}" for model, value in best.items()))
    section.tables.append(table_from_frame(
        table, "Roofline bound and efficiency per point",
        {"model": "model", "batch_size": "batch", "threads": "threads", "backend": "backend",
         "measured_ms": "measured ms", "bound_ms": "bound ms", "efficiency": "efficiency",
         "limiting_stage": "limiting stage", "limit": "limit",
         "rows_resident": "rows fit LLC", "overhead_share_low": "overhead (low)",
         "overhead_share_high": "overhead (high)", "overhead_basis": "overhead from"},
        {"measured_ms": "ms", "bound_ms": "ms", "efficiency": "pct",
         "overhead_share_low": "pct", "overhead_share_high": "pct"},
        "Bound: each stage's larger of compute and memory time at the measured ceilings, "
        "summed over stages; gathers at the bandwidth measured for tables of each table's "
        "size and for runs of the ids each batch reads from it, or at the cached rate where "
        "the rows of every batch the timing loop cycles through fit in the LLC (rows fit "
        "LLC). Overhead: time outside any operator, bracketed because the measuring "
        "tool's own cost cannot be split between inside and outside operators: the "
        "operator clock (about 0.1 us per operator) where it ran, else the profiler "
        "(docs/performance.md)."))
    section.notes += notes
    return section
