"""The report's fleet section: where the reported runs' points were measured on several
platforms (a run on a cluster, or runs of several machines), the machines side by side: the
platforms and what each measured, which one serves each model and batch size fastest, a
figure of each one's latency, and the paper's findings checked on each one's points. It
renders :mod:`recstack.analysis.fleet`'s frames; reports of one platform have no fleet
section."""

from __future__ import annotations

from dataclasses import replace

import pandas as pd

from recstack.report.sections import (
    ReportContext,
    Section,
    Table,
    figures_from,
    table_from_frame,
    with_precision_label,
)

TITLE = "Fleet: the platforms side by side"


def fleet_section(context: ReportContext) -> Section | None:
    from recstack.analysis.fleet import (
        best_per_platform,
        best_platform,
        per_platform_latency,
        platform_summary,
    )

    points = context.point_platforms
    if len(context.measuring_platforms()) < 2:
        return None
    machines = platform_summary(points)
    section = Section("fleet", TITLE)
    section.tables.append(table_from_frame(
        machines, "Platforms and the points each measured",
        {"platform_id": "platform", "platform": "description", "runs": "runs",
         "points": "points measured", "timing_points": "timing points",
         "failed_points": "failed"},
        caption="Every level's points; a point stored before points had a platform counts "
                "for its run's."))
    if context.timings.empty:
        section.notes.append("No timing point was measured: no platform is ranked.")
    else:
        _ranking(section, best_platform(context.timings), best_per_platform(context.timings))
        every, precision = with_precision_label(per_platform_latency(context.timings))
        section.tables.append(_collapsed(table_from_frame(
            every, "Every configuration, per platform",
            {"model": "model", "batch_size": "batch", "device": "device", "threads": "threads",
             "backend": "backend", **precision, "cache_state": "cache", "platform_id": "platform",
             "points": "points", "median_ms": "median ms", "p95_ms": "p95 ms",
             "throughput_per_s": "samples/s"},
            {"median_ms": "ms", "p95_ms": "ms", "throughput_per_s": "rate"},
            "A configuration several runs measured on one platform: the median of their "
            "medians.")))
    section.tables.append(_findings_table(context, points))
    section.notes.append("Every number here is computed on one platform's points; machines "
                         "meet only in the ranking, which sets each platform's fastest "
                         "deployment of a model, table size, batch size and cache state "
                         "against the others' (cold points where a configuration was also "
                         "measured warm).")
    return section


def _ranking(section: Section, ranked: pd.DataFrame, lines: pd.DataFrame) -> None:
    """The figure of each platform's latency (``lines``: ``fleet.best_per_platform``), the
    best-platform table (``ranked``: ``fleet.best_platform``) and its headline."""
    from recstack.report.fleet_plots import plot_latency_by_platform

    section.figures += figures_from(
        lambda directory: plot_latency_by_platform(lines, directory / "fleet_latency.png"),
        "Each platform's fastest median latency per model and batch size (its id in the "
        "legend; the platforms table names the machine).")
    if ranked.empty:
        section.notes.append("No model and batch size was timed on two or more platforms: "
                             "nothing is ranked.")
        return
    shown, precision = with_precision_label(ranked)
    section.tables.append(table_from_frame(
        shown, "Fastest platform per model and batch size",
        {"model": "model", "batch_size": "batch", **precision, "cache_state": "cache",
         "platforms": "platforms", "best_platform_id": "fastest",
         "best_deployment": "deployment", "best_median_ms": "median ms",
         "runner_up_platform_id": "runner-up", "runner_up_deployment": "deployment",
         "runner_up_median_ms": "median ms", "ratio": "runner-up/fastest"},
        {"best_median_ms": "ms", "runner_up_median_ms": "ms", "ratio": "x"},
        "Only models and batch sizes measured on two or more platforms are ranked; each "
        "platform by its fastest deployment there."))
    wins = ranked.groupby("best_platform_id").size()
    first, *others = sorted(wins.index, key=lambda platform: (-wins[platform], platform))
    tally = ", ".join([f"{first} is fastest at {wins[first]}",
                       *(f"{platform} at {wins[platform]}" for platform in others)])
    widest = ranked.loc[ranked.ratio.idxmax()]
    section.headline = (
        f"Of {len(ranked)} model and batch sizes measured on two or more platforms, {tally}"
        f"; the widest gap: {widest.model} at batch {widest.batch_size}, where "
        f"{widest.best_platform_id} is {widest.ratio:.3g}x as fast as "
        f"{widest.runner_up_platform_id}")


def _findings_table(context: ReportContext, points: pd.DataFrame) -> Table:
    """The findings per platform (``points``: ``fleet.load_point_platforms``), one column
    each."""
    from recstack.analysis.findings import Evidence
    from recstack.analysis.fleet import findings_by_platform, findings_grid

    per_platform = findings_by_platform(
        Evidence(timings=context.timings, shares=context.shares, hardware=context.hardware,
                 targets=context.targets, serving=context.serving), points)
    if context.serving.empty:  # measured only on request, as in the findings section
        per_platform = per_platform[per_platform.level != "serving"]
    grid = findings_grid(per_platform)
    platforms = [c for c in grid.columns if c not in ("id", "level", "statement")]
    return table_from_frame(
        grid, "The paper's findings, checked on each platform's points",
        {"statement": "finding", **{platform: platform for platform in platforms}},
        caption="Each column: the findings checked on that platform's points alone (the "
                "feature-bottleneck correlation, one analysis of a whole design space, is "
                "not checked per platform).")


def _collapsed(table: Table) -> Table:
    return replace(table, collapsed=True)
