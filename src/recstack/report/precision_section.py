"""The report's precision section: where the reported runs timed points in more than one
numeric precision (``--precision``), each reduced precision against fp32, configuration by
configuration: latency, throughput and speedup, the output deviation beside the speedup, the
embedding share and the footprint as they shift with precision, and a figure of the speedup
against batch size. It renders :mod:`recstack.analysis.precision`'s frames; reports of one
precision have no precision section."""

from __future__ import annotations

import pandas as pd

from recstack.report.sections import ReportContext, Section, figures_from, table_from_frame

TITLE = "Precision: latency, accuracy and footprint per numeric precision"
MIB = 2**20


def precision_section(context: ReportContext) -> Section | None:
    from recstack.analysis.precision import (load_memory_bound, load_model_specs,
                                             precision_summary, precision_table)
    from recstack.analysis.systems import precisions_of
    from recstack.precision import REFERENCE

    precisions = precisions_of(context.timings)
    if len(precisions) < 2:
        return None
    table = precision_table(context.timings, context.shares,
                            load_model_specs(context.store, context.run_ids),
                            load_memory_bound(context.store, context.run_ids))
    summary = precision_summary(table)
    bounded = bool(table.memory_share.notna().any())
    section = Section("precision", TITLE)
    if table.speedup[table.precision != REFERENCE].notna().any():
        from recstack.report.precision_plots import plot_speedup_by_precision

        section.figures += figures_from(
            lambda directory: plot_speedup_by_precision(
                table, directory / "precision_speedup.png"),
            "Each reduced precision's speedup over the fp32 point of the same configuration "
            "(the dotted line), per model and batch size.")
    section.tables.append(_points_table(table, bounded))
    section.tables.append(table_from_frame(
        summary, "Per model and precision: the speedup's range and the largest deviation",
        {"model": "model", "precision": "precision", "points": "points",
         "compared": "with fp32 twin", "speedup_min": "speedup min",
         "speedup_median": "median", "speedup_max": "max",
         "max_abs_deviation": "max |deviation|", "embedding_bytes_ratio": "tables vs fp32",
         **({"memory_bound_fraction": "memory-bound points"} if bounded else {})},
        {"speedup_min": "x", "speedup_median": "x", "speedup_max": "x",
         "max_abs_deviation": "num", "embedding_bytes_ratio": "pct",
         "memory_bound_fraction": "pct"},
        "Each speedup is within one configuration; the range spans batch sizes and "
        "deployments."))
    headline = _headline(summary)
    if headline is not None:
        section.headline = headline
    section.notes += [
        f"These runs timed {len(precisions)} precisions: {', '.join(precisions)} "
        "(emb: how the embedding tables are stored; dense: the fully connected layers' type).",
        "speedup: the fp32 point's median latency over this point's, in the same run, "
        "platform, model, table size, batch size, device, threads, backend and cache state; "
        "a precision is never compared across configurations.",
        "|deviation|: the largest and the mean absolute difference of the predictions from the "
        "fp32 model's on the same queries, stored with the point (none in fp32, nor where the "
        "fp32 model did not fit beside the reduced one).",
        "embedding share: the embedding operators' share of operator time in the run's operator "
        "profile of the configuration; tables MiB and gathered bytes: the footprint of the "
        "point's spec in its precision (int8 rows carry a scale and a bias; tables too narrow "
        "to gain stay fp32).",
        "memory-bound: whether memory-limited stages take most of the point's roofline bound "
        "in its precision (the roofline section's bound)." if bounded else
        "memory-bound: not shown; no ceilings are stored for these runs' platforms (`recstack "
        "ceilings` measures them)."]
    return section


def _points_table(table: pd.DataFrame, bounded: bool):  # -> Table
    """Every timing point by model, batch size and precision, with what varies of run,
    platform and cache state (and, where ``bounded``, whether memory bounds it)."""
    optional = {"run_id": "run", "platform_id": "platform"}
    shown = {c: header for c, header in optional.items() if table[c].nunique() > 1}
    cache = {"cache_state": "cache"} if table.cache_state.nunique() > 1 else {}
    return table_from_frame(
        table.assign(embedding_mib=table.embedding_bytes / MIB),
        "Latency, speedup and accuracy per precision, per model and batch size",
        {**shown, "model": "model", "batch_size": "batch", "device": "device",
         "threads": "threads", "backend": "backend", **cache, "precision": "precision",
         "median_ms": "median ms", "p95_ms": "p95 ms", "throughput_per_s": "samples/s",
         "speedup": "speedup vs fp32", "max_abs_deviation": "max |deviation|",
         "mean_abs_deviation": "mean |deviation|", "embedding_share": "embedding share",
         "embedding_mib": "tables MiB", "gathered_bytes_per_sample": "gathered B/sample",
         **({"memory_share": "memory share", "memory_bound": "memory-bound"}
            if bounded else {})},
        {"median_ms": "ms", "p95_ms": "ms", "throughput_per_s": "rate", "speedup": "x",
         "memory_share": "pct", "max_abs_deviation": "num", "mean_abs_deviation": "num",
         "embedding_share": "pct", "embedding_mib": "num", "gathered_bytes_per_sample": "rate"},
        "fp32 first within each configuration.")


def _headline(summary: pd.DataFrame) -> str | None:
    """The reduced precision and model with the largest median speedup over fp32, its
    deviation and its tables' size; None where no reduced point has an fp32 twin."""
    from recstack.precision import REFERENCE

    reduced = summary[(summary.precision != REFERENCE) & (summary.compared > 0)]
    if reduced.empty:
        return None
    top = reduced.loc[reduced.speedup_median.idxmax()]
    text = (f"Precision: {top.model} in {top.precision} runs at {top.speedup_median:.2g}x "
            f"the speed of fp32 (median over {top.compared} configuration"
            f"{'s' if top.compared != 1 else ''}, up to {top.speedup_max:.2g}x)")
    if pd.notna(top.max_abs_deviation):
        text += f", its predictions within {top.max_abs_deviation:.2g} of fp32's"
    if pd.notna(top.embedding_bytes_ratio):
        text += f", its tables at {top.embedding_bytes_ratio:.0%} of their fp32 bytes"
    return text
