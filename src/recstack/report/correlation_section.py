"""The report's cross-stack correlation section: features vs bottlenecks over a design space,
and whether one feature dominates each bottleneck. It leaves the dominance table on the
context for the findings section."""

from __future__ import annotations

from recstack.errors import RecstackError
from recstack.report.sections import (ReportContext, Section, figures_from, not_measured,
                                      table_from_frame)

TITLE = "Cross-stack correlation: model features vs bottlenecks"
# Rows of the strongest-correlations table per analysed group.
TOP_CORRELATIONS = 10


def correlation_section(context: ReportContext) -> Section:
    from recstack.analysis.bottlenecks import load_bottlenecks
    from recstack.analysis.correlation import DOMINANCE_THRESHOLD, correlate
    from recstack.analysis.runs import design_runs
    from recstack.analysis.views import dominated_bottlenecks, strongest_correlations
    from recstack.report.correlation import write_correlation_figures

    runs = design_runs(context.store, context.run_ids)
    if not runs:
        return not_measured("correlation", TITLE, "Measure a design space of model variants "
                            "with `recstack correlate` (`--quick` for a first look).")
    run_id = runs[0]
    try:
        result = correlate(load_bottlenecks(context.store, [run_id]))
    except RecstackError as error:
        return not_measured("correlation", TITLE, f"Design-space run {run_id}: {error}.")
    context.dominance = result.dominance
    design = context.store.design_space(run_id)
    section = Section("correlation", TITLE)
    counts = dominated_bottlenecks(result.dominance).iloc[0]
    section.headline = (f"{counts.dominated} of {counts.bottlenecks} bottlenecks (per batch "
                        "size) have one feature carrying at least "
                        f"{DOMINANCE_THRESHOLD:.0%} of the variance the features explain")
    section.figures += figures_from(
        lambda directory: write_correlation_figures(result, directory, DOMINANCE_THRESHOLD),
        f"Design-space run {run_id}: {len(design)} variants of "
        f"{', '.join(sorted(set(design.base_model)))}")
    section.tables.append(table_from_frame(
        result.dominance,
        "Share of explained variance carried by the strongest single feature",
        {"batch_size": "batch", "bottleneck": "bottleneck",
         "strongest_feature": "strongest feature", "strongest_share": "its share",
         "strongest_r2": "adj. R² alone", "full_r2": "adj. R² selected", "dominated":
         "dominates?", "n": "variants"},
        {"strongest_share": "pct", "strongest_r2": "num", "full_r2": "num"},
        "Adjusted R² of the best one-feature fit over that of a forward-selected fit "
        "(see analysis/correlation.py); an upper bound on the feature's own part.",
        ["flag" if d else "" for d in result.dominance.dominated]))
    section.tables.append(table_from_frame(
        result.fits, "Regression per bottleneck (standardized features, forward selection)",
        {"batch_size": "batch", "bottleneck": "bottleneck", "features": "features chosen",
         "r2": "R²", "adj_r2": "adj. R²", "cv_r2": "R² cross-validated", "n": "variants"},
        {"r2": "num", "adj_r2": "num", "cv_r2": "num"}))
    section.tables.append(table_from_frame(
        strongest_correlations(result.correlations, TOP_CORRELATIONS),
        "Strongest Spearman correlations",
        {"batch_size": "batch", "feature": "feature", "bottleneck": "bottleneck", "r": "r",
         "p_value": "p", "significant": "significant (FDR 5%)"},
        {"r": "num", "p_value": "num"}))
    section.notes += result.notes
    section.notes.append(f"Design-space run {run_id}: variants are ordinary specs, stored "
                         "with the points; `recstack design` lists them.")
    return section

