"""The report's sections of the three levels: systems (latency, throughput, deployment),
software (operator breakdown) and hardware (top-down, miss rates). Each renders the view
frames of :mod:`recstack.analysis.views` and the figures of ``report/plots.py``. Where the
runs' timing points span several platforms (a run on a cluster), the systems section's figures
and tables are per platform (the fleet section, ``report/fleet_section.py``, compares them)."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

import pandas as pd

from recstack.report.sections import (ReportContext, Section, Table, by_precision, by_run,
                                      by_run_and_platform, cell, figures_from, grid_table,
                                      not_measured, table_from_frame, with_precision_label)
from recstack.text import MISSING

if TYPE_CHECKING:
    from recstack.analysis.views import SpreadExtremes

HARDWARE_RATES = {"ipc": "IPC", "l1i_mpki": "L1i MPKI", "l1d_mpki": "L1d MPKI",
                  "llc_mpki": "LLC MPKI", "branch_mpki": "branch MPKI",
                  "dtlb_mpki": "dTLB MPKI", "itlb_mpki": "iTLB MPKI"}
LEVEL1 = {"retiring": "retiring", "bad_speculation": "bad spec.",
          "frontend_bound": "frontend", "backend_bound": "backend"}
GRID_KEYS = {"model": "model", "run_id": "run", "device": "device", "threads": "threads",
             "backend": "backend", "embedding_precision": "embedding",
             "dense_precision": "dense", "cache_state": "cache"}
UNSTABLE_MARK = "*"
# Operator classes, short enough for a cell of the model x batch table.
SHORT_CLASS = {"embedding": "emb", "interaction": "inter", "attention": "attn",
               "recurrent": "rnn", "activation": "act", "elementwise": "elt",
               "data_movement": "move", "overhead": "ovh"}


def _latency_cell(point: dict) -> str:
    return cell(point["median_ms"], "ms") + (UNSTABLE_MARK if point["unstable"] else "")


def _dominant_cell(point: dict) -> str:
    top = str(point["top_class"])
    return (f"{SHORT_CLASS.get(top, top)} {cell(point['top_class_share'], 'pct')} / "
            f"{point['top_part']}")


def _collapsed(table: Table) -> Table:
    return replace(table, collapsed=True)


def _cache_note(timings: pd.DataFrame) -> str:
    """What cache state the systems figures and tables read."""
    from recstack.analysis.views import cache_comparison

    states = set(timings.cache_state) if "cache_state" in timings.columns else {"warm"}
    if states == {"warm"}:
        return ("Every timing point here is warm (a few batches cycled: stored before points "
                "had a cache state, or measured so).")
    if cache_comparison(timings).empty:
        return f"Timing points by cache state: {', '.join(sorted(states))}."
    return ("Where a configuration was measured both cold and warm, this section's figures "
            "and tables use its cold point; the cache-state section compares the two.")


def systems_section(context: ReportContext) -> Section:
    from recstack.analysis.fleet import platforms_of
    from recstack.analysis.systems import precisions_of, sort_points
    from recstack.report.plots import write_systems_figures

    title = "Systems level: latency, throughput and deployment"
    timings = context.timings
    if timings.empty:
        return not_measured("systems", title, "Measure it with `recstack run` (timing level).")
    section = Section("systems", title)
    for label, rows in (split for run_rows in by_run_and_platform(context, timings)
                        for split in by_precision(*run_rows)):
        section.figures += figures_from(
            lambda directory, rows=rows: write_systems_figures(rows, directory),
            "Median latency per batch size (p5-p95 band shaded); speedup heatmap; cold points "
            "where a configuration was also measured warm.", label)
    platforms = platforms_of(timings)
    if len(platforms) > 1:
        # A deployment of one machine is never ranked against one of another here: each
        # platform gets its own tables; the fleet section sets the machines side by side.
        extremes = [(platform, _deployment_tables(
            section, context, timings[timings.platform_id == platform],
            f" (platform {platform})")) for platform in platforms]
    else:
        extremes = [("", _deployment_tables(section, context, timings, ""))]
    headline = _spread_headline(extremes)
    if headline is not None:
        section.headline = headline
    if (timings.device == "cpu").all():
        section.notes.append("No GPU was measured: the heatmap shows the CPU's throughput "
                             "gain over its smallest batch instead of a GPU-over-CPU speedup.")
    section.notes.append(_cache_note(timings))
    if len(platforms) > 1:
        section.notes.append(
            f"These runs' timing points were measured on {len(platforms)} platforms "
            f"({', '.join(platforms)}): the figures and the latency, deployment and spread "
            "tables are per platform, so no statistic mixes machines; the fleet section "
            "compares them.")
    if len(precisions := precisions_of(timings)) > 1:
        section.notes.append(
            f"These runs' timing points span {len(precisions)} precisions "
            f"({', '.join(precisions)}): every figure and every model's row is per precision "
            "(an int8 model is not a deployment of its fp32 original); the precision section "
            "sets them side by side.")
    points, precision = with_precision_label(sort_points(timings))
    section.tables.append(_collapsed(table_from_frame(
        points, "Every timing point",
        {"run_id": "run", **({"platform_id": "platform"} if len(platforms) > 1 else {}),
         "model": "model", "batch_size": "batch", "device": "device",
         "threads": "threads", "backend": "backend", **precision, "cache_state": "cache",
         "median_ms": "median ms", "p95_ms": "p95 ms", "p99_ms": "p99 ms",
         "throughput_per_s": "samples/s", "cv": "CV", "unstable": "unstable"},
        {"median_ms": "ms", "p95_ms": "ms", "p99_ms": "ms", "throughput_per_s": "rate",
         "cv": "pct"},
        row_classes=["flag" if u is True else "" for u in points.unstable])))
    return section


def _deployment_tables(section: Section, context: ReportContext, timings: pd.DataFrame,
                       suffix: str) -> SpreadExtremes | None:
    """Appends the latency grid, the best deployment and the deployment choice of
    ``timings`` (``suffix`` ends their titles: which platform); returns the choice's largest
    spreads, for the headline."""
    from recstack.analysis.systems import best_deployment
    from recstack.analysis.views import deployment_choice, latency_grid, spread_extremes

    section.tables.append(grid_table(
        latency_grid(timings), f"Median latency (ms) per model and batch size{suffix}",
        _latency_cell,
        f"{UNSTABLE_MARK}: flagged unstable (p5-p95 spread over the threshold, see the "
        "methodology). Each cell: the point of that model and batch (its backend in the "
        "detail below).", GRID_KEYS))
    best, precision = with_precision_label(best_deployment(timings, context.targets))
    section.tables.append(table_from_frame(
        best, "Best deployment per model (highest throughput meeting the p95 target)" + suffix,
        {"model": "model", **precision, "target_ms": "p95 target ms", "device": "device",
         "threads": "threads", "backend": "backend", "batch_size": "batch",
         "p95_ms": "p95 ms", "throughput_per_s": "samples/s", "meets_target": "meets target"},
        {"p95_ms": "ms", "throughput_per_s": "rate"}, f"targets: {context.targets.source}",
        ["" if meets else "flag" for meets in best.meets_target]))
    choice = deployment_choice(timings, context.targets)
    shown, precision = with_precision_label(choice)
    section.tables.append(table_from_frame(
        shown, "Deployment choice: best over worst throughput" + suffix,
        {"model": "model", **precision, "deployments": "deployments", "best": "best",
         "worst": "worst", "ratio": "best/worst",
         "ratio_within_target": "best/worst within target"},
        {"ratio": "x", "ratio_within_target": "x"},
        f"{MISSING} within target: no deployment of the model meets its target."))
    return spread_extremes(choice)


def _spread_headline(extremes: list[tuple[str, SpreadExtremes | None]]) -> str | None:
    """The largest spread between deployment choices, over (platform, its extremes) pairs
    (the platform empty when the runs measured on one): each spread is within a platform,
    and the headline names it."""
    found = [(platform, e) for platform, e in extremes if e is not None]
    if not found:
        return None
    platform, top = max(found, key=lambda pair: pair[1].ratio)
    where = f" on platform {platform}" if platform else ""
    headline = (f"Deployment choice: the best configuration beats the worst by up to "
                f"{top.ratio:.1f}x in throughput ({top.model}{_in(top.precision)}{where}: "
                f"{top.best} over {top.worst})")
    inside = [(p, e) for p, e in found if e.within_model is not None]
    if inside:
        platform, within = max(inside, key=lambda pair: pair[1].within_ratio)
        where = f" on platform {platform}" if platform else ""
        headline += (f"; within the latency targets by up to {within.within_ratio:.1f}x "
                     f"({within.within_model}{_in(within.within_precision)}{where})")
    return headline + ". The paper reports up to 15x."


def _in(precision: str) -> str:
    """`` in emb=int8,dense=fp32`` for a model's reduced precision; nothing for fp32."""
    from recstack.precision import REFERENCE

    return "" if precision == REFERENCE else f" in {precision}"


def software_section(context: ReportContext) -> Section:
    from recstack.analysis.breakdown import unclassified_operators
    from recstack.analysis.views import software_summary
    from recstack.report.plots import write_software_figures

    title = "Software level: operator breakdown"
    if context.shares.empty:
        return not_measured("software", title, "Measure it with `recstack run` (operators "
                            "level) or `recstack profile`.")
    section = Section("software", title)
    for label, rows in (split for run_rows in by_run(context, context.shares)
                        for split in by_precision(*run_rows)):
        section.figures += figures_from(
            lambda directory, rows=rows: write_software_figures(rows, directory),
            "Share of inference time by operator class and by model part (profiled runs).",
            label)
    from recstack.analysis.views import dominant_grid

    summary = software_summary(context.shares, context.profiles)
    section.tables.append(grid_table(
        dominant_grid(summary), "Dominant operator class and model part per model and batch "
        "size", _dominant_cell,
        "Each cell: the largest operator class and its share of the iteration / the largest "
        "model part. " + ", ".join(f"{short} = {name}" for name, short in SHORT_CLASS.items())
        + ".", GRID_KEYS))
    summary, precision = with_precision_label(summary)
    section.tables.append(_collapsed(table_from_frame(
        summary, "Dominant operator class and model part per point",
        {"run_id": "run", "model": "model", "batch_size": "batch", "device": "device",
         "threads": "threads", "backend": "backend", **precision, "cache_state": "cache",
         "top_class": "top class", "top_class_share": "share",
         "top_part": "top part", "top_part_share": "share (part)",
         "overhead_share": "overhead", "profiler_overhead": "profiler +"},
        {"top_class_share": "pct", "top_part_share": "pct", "overhead_share": "pct",
         "profiler_overhead": "+pct"},
        "overhead: time no operator covers; profiler +: the profiler's added latency.")))
    unknown = unclassified_operators(context.operators)
    if not unknown.empty:
        section.notes.append("Operators not in the class table (counted as 'other'): "
                             + ", ".join(unknown.op))
    return section


def hardware_section(context: ReportContext) -> Section:
    from recstack.analysis.views import hardware_notes, hardware_summary
    from recstack.report.plots import plot_topdown

    title = "Hardware level: top-down and miss rates"
    if context.hardware.empty:
        return not_measured("hardware", title, "Measure it with `recstack hardware` or "
                            "`recstack run --levels timing,operators,hardware` (simulated "
                            "with valgrind where the CPU exposes no counters).")
    section = Section("hardware", title)
    hardware = hardware_summary(context.hardware)
    for label, rows in (split for run_rows in by_run(context, hardware)
                        for split in by_precision(*run_rows)):
        # Measured and simulated figures are never drawn in one chart.
        for kind, group in rows.groupby("kind"):
            if group[list(LEVEL1)].notna().all(axis=1).any():
                name = f"{kind} {label}".strip()
                section.figures += figures_from(
                    lambda directory, group=group: plot_topdown(
                        group, directory / "topdown.png"),
                    f"Top-down level 1, {kind.upper()}: "
                    + "; ".join(sorted(set(group.source))), name)
    shown, precision = with_precision_label(
        hardware.assign(top_stall=hardware.top_stall.str.replace("_", " ")))
    section.tables.append(table_from_frame(
        shown, "Miss rates and top-down per point (each labelled measured or simulated)",
        {"model": "model", "row_scale": "rows x", "batch_size": "batch", **precision,
         "kind": "source",
         **HARDWARE_RATES, **LEVEL1, "top_stall": "top stall"},
        {**dict.fromkeys(HARDWARE_RATES, "num"), **dict.fromkeys(LEVEL1, "pct"),
         "row_scale": "num"},
        f"{MISSING}: not measured (never shown as zero).",
        ["simulated" if kind == "simulated" else "" for kind in hardware.kind]))
    notes = hardware_notes(hardware)
    section.notes += [f"Source: {text}" for text in notes[notes.kind == "source"].text]
    return section
