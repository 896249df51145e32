"""The report's cache-state section: configurations measured both cold and warm, side by
side, and whether each cold point's working set reached the cold multiple of the LLC."""

from __future__ import annotations

import pandas as pd

from recstack.report.sections import (ReportContext, Section, by_precision, by_run,
                                      figures_from, not_measured, table_from_frame,
                                      with_precision_label)

TITLE = "Cache state: cold against warm embedding caches"


def cold_meaning() -> str:
    from recstack.working_set import COLD_LLC_MULTIPLE

    return (f"Cold (every point unless said otherwise): the timing loop cycles enough distinct "
            f"batches that the embedding bytes they touch reach {COLD_LLC_MULTIPLE:g}x the "
            "last-level cache (or every row, where the tables are smaller than that), so "
            "gathers come from memory as on a server; warm: a few batches cycled, whose rows "
            "stay cached at small batch, as a microbenchmark reusing one input sees.")


def cache_section(context: ReportContext) -> Section:
    from recstack.analysis.views import cache_comparison, cold_working_sets
    from recstack.report.cache_plots import plot_cache_comparison

    timings = context.timings
    cold = cold_working_sets(timings)
    if timings.empty or cold.empty:
        return not_measured("cache", TITLE, "Every timing point of these runs is warm (stored "
                            "before points had a cache state, or measured with --cache warm); "
                            "`recstack run` measures cold by default.")
    section = Section("cache", TITLE)
    section.notes.append(cold_meaning())
    pairs = cache_comparison(timings)
    if pairs.empty:
        section.notes.append("No configuration was measured both cold and warm in these runs.")
    else:
        for label, rows in (split for run_rows in by_run(context, pairs)
                            for split in by_precision(*run_rows)):
            section.figures += figures_from(
                lambda directory, rows=rows: plot_cache_comparison(
                    rows, directory / "cache_cold_vs_warm.png"),
                "Median latency, warm and cold, of each configuration measured both ways.",
                label)
        shown, precision = with_precision_label(pairs)
        section.tables.append(table_from_frame(
            shown, "Cold against warm, per configuration measured both ways",
            {"model": "model", "batch_size": "batch", "device": "device", "threads": "threads",
             "backend": "backend", **precision, "warm_ms": "warm ms", "cold_ms": "cold ms",
             "cold_over_warm": "cold/warm", "memory_share": "hidden by the cache",
             "working_set_mib": "cold working set MiB", "llc_mib": "LLC MiB",
             "llc_multiple": "x LLC"},
            {"warm_ms": "ms", "cold_ms": "ms", "cold_over_warm": "x", "memory_share": "pct",
             "working_set_mib": "num", "llc_mib": "num", "llc_multiple": "x"},
            "hidden by the cache: 1 - warm/cold, the share of the cold latency a warm cache "
            "hid. Every other section uses the cold point of these configurations.",
            ["" if reached is not False else "flag" for reached in pairs.reached]))
        top = pairs.loc[pairs.cold_over_warm.idxmax()]
        section.headline = (f"A warm cache hides up to {top.memory_share:.0%} of the cold "
                            f"latency ({top.model} at batch {top.batch_size}: "
                            f"{top.warm_ms:.3g} ms warm, {top.cold_ms:.3g} ms cold)")
    section.notes += shortfalls(cold)
    return section


def shortfalls(cold: pd.DataFrame) -> list[str]:
    """One line per model whose cold points' working sets fell short of the cold multiple
    (tables too small, or the query-memory budget: as many distinct rows as they allow are
    touched instead), with each point's multiple."""
    from recstack.working_set import COLD_LLC_MULTIPLE

    short = cold[cold.reached.eq(False)]
    lines = []
    for model, rows in short.groupby("model", sort=False):
        points = ", ".join(f"b{r.batch_size} {r.working_set_mib:.3g} MiB ({r.llc_multiple:.2g}x)"
                           for r in rows.itertuples())
        lines.append(f"{model}: the cold working set fell short of {COLD_LLC_MULTIPLE:g}x the "
                     f"LLC ({rows.llc_mib.iloc[0]:.3g} MiB): its tables (or the query-memory "
                     f"budget) allow no more distinct rows, which are all touched: {points}.")
    unknown = cold.llc_multiple.isna().sum()
    if unknown:
        lines.append(f"{unknown} cold point(s) did not record their working set.")
    return lines

