"""Summary tables printed after a measurement. Presentation only: the analyses' view frames
(:mod:`recstack.analysis.views`) hold every number; figures are written apart
(:func:`recstack.report.figures.write_run_figures`)."""

from __future__ import annotations

from typing import Any

from rich.table import Table

from recstack.cli import format as fmt
from recstack.cli.app import console
from recstack.text import MISSING


def _table(title: str, columns: tuple[str, ...], left: set[str]) -> Table:
    """A table whose ``left`` columns (text) are left-aligned and the rest (numbers) right."""
    table = Table(title=title, header_style="bold")
    for column in columns:
        table.add_column(column, justify="left" if column in left else "right")
    return table


def _missing(value: Any) -> bool:
    if value is None:
        return True
    try:
        return bool(value != value)  # NaN
    except TypeError:  # pandas' NA has no truth value
        return True


def _pct(value: Any, signed: bool = False) -> str:
    if _missing(value):
        return MISSING
    return f"{value:+.0%}" if signed else f"{value:.0%}"


def _num(value: Any) -> str:
    return MISSING if _missing(value) else f"{value:.3g}"


def _ratio(value: Any) -> str:
    return MISSING if _missing(value) else f"{value:.1f}x"


def _text(value: Any) -> str:
    return MISSING if _missing(value) else str(value).replace("_", " ")


def _model(row: Any) -> str:
    """The row's model, followed by its precision where that is not fp32: a model timed in
    two precisions is two rows that must read apart."""
    from recstack.analysis.systems import precision_label
    from recstack.precision import REFERENCE

    label = precision_label(getattr(row, "embedding_precision", None),
                            getattr(row, "dense_precision", None))
    return str(row.model) if label == REFERENCE else f"{row.model} {label}"


def points_table(timings: Any) -> Table:
    """Every measured point of ``systems.load_timings``' frame, one row each."""
    table = _table("measured points", (
        "model", "batch", "device", "threads", "backend", "median ms", "p95 ms", "p99 ms",
        "samples/s", "CV", "iterations", "flag"), {"model", "device", "backend", "flag"})
    for row in timings.itertuples():
        table.add_row(_model(row), str(row.batch_size), row.device, str(row.threads),
                      str(row.backend),
                      fmt.ms(row.median_ms), fmt.ms(row.p95_ms), fmt.ms(row.p99_ms),
                      fmt.rate(row.throughput_per_s), _pct(row.cv), str(row.iterations),
                      "unstable" if row.unstable is True or row.unstable == 1 else "")
    return table


def print_summary(timings: Any, targets: Any) -> None:
    """The systems level per model (``views.systems_summary``) and the deployment-choice
    headline."""
    from recstack.analysis.views import (
        deployment_choice,
        spread_extremes,
        systems_summary,
    )

    table = _table("systems level: latency, throughput and deployment choice", (
        "model", "rows", "batch-1 median ms", "peak samples/s", "at", "p95 target ms",
        "best under target", "p95 ms", "samples/s", "best/worst", "best/worst in target"),
        {"model", "at", "best under target"})
    for row in systems_summary(timings, targets).itertuples():
        deployment = (f"{row.best_device} t{row.best_threads} b{row.best_batch_size}"
                      + ("" if row.meets_target else " (misses target)"))
        table.add_row(
            _model(row), "full" if row.row_scale == 1 else f"x{row.row_scale:g}",
            fmt.ms(row.smallest_batch_median_ms), fmt.rate(row.peak_throughput_per_s),
            f"{row.peak_device} t{row.peak_threads} b{row.peak_batch_size}",
            f"{row.target_ms:g}", deployment, fmt.ms(row.best_p95_ms),
            fmt.rate(row.best_throughput_per_s), _ratio(row.spread_ratio),
            _ratio(row.spread_ratio_within_target))
    console.print(table)
    extremes = spread_extremes(deployment_choice(timings, targets))
    if extremes is not None:
        within = (f"within the latency targets by up to {extremes.within_ratio:.1f}x"
                  if extremes.within_model is not None
                  else "no deployment meets the latency targets")
        console.print(f"deployment choice: the best configuration beats the worst by up to "
                      f"{extremes.ratio:.1f}x in throughput ({extremes.model}"
                      f"{'' if extremes.precision == 'fp32' else ' ' + extremes.precision}); "
                      f"{within}",
                      highlight=False)
    console.print(f"targets: {targets.source}", highlight=False)


def print_software_level(store: Any, run_id: str) -> None:
    """The operator-breakdown summary of a run (``views.software_summary``); nothing when
    the run profiled no point."""
    from recstack.analysis.breakdown import unclassified_operators
    from recstack.analysis.views import software_frames, software_summary

    operators, profiles, shares = software_frames(store, [run_id])
    if profiles.empty:
        return
    table = _table("software level: dominant operator class and model part", (
        "model", "device", "batch", "top class", "share", "top part", "share ", "overhead",
        "profiler +"), {"model", "device", "top class", "top part"})
    for row in software_summary(shares, profiles).itertuples():
        table.add_row(_model(row), row.device, str(row.batch_size), _text(row.top_class),
                      _pct(row.top_class_share), _text(row.top_part), _pct(row.top_part_share),
                      _pct(row.overhead_share), _pct(row.profiler_overhead, signed=True))
    console.print(table)
    unknown = unclassified_operators(operators)
    if not unknown.empty:
        console.print(f"operators not in the class table (counted as 'other'): "
                      f"{', '.join(unknown.op)}", highlight=False)


def print_hardware_level(store: Any, run_id: str) -> None:
    """The hardware level of a run (``views.hardware_summary``), every figure labelled
    measured or simulated, then its sources and caveats; nothing without hardware points."""
    from recstack.analysis.topdown import load_hardware
    from recstack.analysis.views import hardware_notes, hardware_summary

    hardware = load_hardware(store, [run_id])
    if hardware.empty:
        return
    table = _table("hardware level: top-down and miss rates", (
        "model", "rows", "batch", "source", "IPC", "L1i MPKI", "L1d MPKI", "LLC MPKI",
        "branch MPKI", "retiring", "bad spec", "frontend", "backend", "top stall"),
        {"model", "source", "top stall"})
    for row in hardware_summary(hardware).itertuples():
        table.add_row(_model(row), f"x{row.row_scale:g}", str(row.batch_size), row.kind,
                      _num(row.ipc), _num(row.l1i_mpki), _num(row.l1d_mpki),
                      _num(row.llc_mpki), _num(row.branch_mpki), _pct(row.retiring),
                      _pct(row.bad_speculation), _pct(row.frontend_bound),
                      _pct(row.backend_bound), _text(row.top_stall))
    console.print(table)
    for note in hardware_notes(hardware).itertuples():
        console.print(f"{note.kind}: {note.text}", highlight=False, markup=False)


def print_serving_level(store: Any, run_id: str) -> None:
    """A run's serving points (``analysis.serving``): each deployment's latency-bounded
    throughput, then the tuned deployment against the baseline where the run has one."""
    from recstack.analysis.serving import (
        deployment_label,
        load_serving,
        tuned_vs_baseline,
    )

    serving = load_serving(store, [run_id])
    if serving.empty:
        return
    table = _table("serving level: latency-bounded throughput (MLPerf LoadGen)", (
        "model", "rows", "deployment", "backend", "target", "valid QPS", "offline QPS",
        "tests", "peak memory", "model bytes"), {"model", "rows", "deployment", "backend", "target"})
    for row in serving.itertuples():
        series = serving.loc[row.Index]
        table.add_row(row.model, "full" if row.row_scale == 1 else f"x{row.row_scale:g}",
                      deployment_label(series), row.backend,
                      f"p{row.percentile:g} <= {row.target_ms:g} ms",
                      fmt.rate(row.latency_bounded_qps) if not _missing(
                          row.latency_bounded_qps) else "none",
                      fmt.rate(row.capacity_qps), str(row.tests),
                      _bytes(row.peak_memory_bytes), _bytes(row.model_bytes))
    console.print(table)
    for row in tuned_vs_baseline(serving, tuned_only=True).itertuples():
        gain = MISSING if _missing(row.gain) else f"{row.gain:.2f}x"
        console.print(f"{row.model}: tuned ({row.tuned}) {fmt.rate(row.tuned_qps)} QPS vs "
                      f"baseline ({row.baseline}) {fmt.rate(row.baseline_qps)} QPS: {gain} "
                      f"over {row.deployments} deployments measured", highlight=False,
                      markup=False)


def _bytes(value: Any) -> str:
    return MISSING if _missing(value) else f"{value / 2**30:.2f} GiB"
