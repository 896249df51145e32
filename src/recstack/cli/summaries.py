"""Summary tables printed after a measurement (presentation only: analyses compute)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.table import Table

from recstack.cli import format as fmt
from recstack.cli.app import console


def points_table(timings: Any) -> Table:
    table = Table(title="measured points", header_style="bold")
    for column in ("model", "batch", "device", "threads", "backend", "median ms", "p95 ms",
                   "p99 ms", "samples/s", "CV", "iterations", "flag"):
        table.add_column(column, justify="left" if column in ("model", "device", "backend",
                                                              "flag") else "right")
    for row in timings.itertuples():
        table.add_row(row.model, str(row.batch_size), row.device, str(row.threads),
                      str(row.backend),
                      fmt.ms(row.median_ms), fmt.ms(row.p95_ms), fmt.ms(row.p99_ms),
                      fmt.rate(row.throughput_per_s), f"{row.cv:.0%}", str(row.iterations),
                      "unstable" if row.unstable else "")
    return table


def print_summary(timings: Any, targets: Any) -> None:
    from recstack.analysis.systems import best_deployment, deployment_spread

    best = best_deployment(timings, targets).set_index("model")
    spread = deployment_spread(timings).set_index("model")
    spread_in_target = deployment_spread(timings, targets).set_index("model")
    table = Table(title="systems level: latency, throughput and deployment choice",
                  header_style="bold")
    for column in ("model", "rows", "batch-1 median ms", "peak samples/s", "at",
                   "p95 target ms", "best under target", "p95 ms", "samples/s",
                   "best/worst", "best/worst in target"):
        table.add_column(column, justify="left" if column in ("model", "at",
                                                              "best under target") else "right")
    for model_name, group in timings.groupby("model", sort=False):
        smallest = group[group.batch_size == group.batch_size.min()]
        peak = group.loc[group.throughput_per_s.idxmax()]
        choice = best.loc[model_name]
        deployment = (f"{choice.device} t{choice.threads} b{choice.batch_size}"
                      + ("" if choice.meets_target else " (misses target)"))
        in_target = (f"{spread_in_target.loc[model_name].ratio:.1f}x"
                     if model_name in spread_in_target.index else "-")
        scale = group.row_scale.iloc[0]
        table.add_row(
            str(model_name), "full" if scale == 1 else f"x{scale:g}",
            fmt.ms(smallest.median_ms.min()), fmt.rate(peak.throughput_per_s),
            f"{peak.device} t{peak.threads} b{peak.batch_size}", f"{choice.target_ms:g}",
            deployment, fmt.ms(choice.p95_ms), fmt.rate(choice.throughput_per_s),
            f"{spread.loc[model_name].ratio:.1f}x", in_target,
        )
    console.print(table)
    if not spread.empty:
        top = spread.ratio.idxmax()
        console.print(f"deployment choice: the best configuration beats the worst by up to "
                      f"{spread.ratio.max():.1f}x in throughput ({top}); within the latency "
                      f"targets by up to "
                      f"{spread_in_target.ratio.max() if not spread_in_target.empty else 0:.1f}x",
                      highlight=False)
    console.print(f"targets: {targets.source}", highlight=False)



def software_level(store: Any, run_id: str, figures_dir: Path) -> list[Path]:
    """Prints the operator-breakdown summary of a run and writes its figures."""
    from recstack.analysis.breakdown import (breakdown, dominant, load_operators,
                                             profiler_overhead, unclassified_operators)
    from recstack.analysis.systems import order_models
    from recstack.report.plots import write_software_figures

    operators, profiles = load_operators(store, [run_id])
    if profiles.empty:
        return []
    shares = order_models(breakdown(operators, profiles))
    by_class = dominant(shares, "operator")
    by_part = dominant(shares, "part")
    overhead = profiler_overhead(profiles).set_index("point_key")
    table = Table(title="software level: dominant operator class and model part",
                  header_style="bold")
    for column in ("model", "device", "batch", "top class", "share", "top part", "share ",
                   "overhead", "profiler +"):
        table.add_column(column, justify="left" if column in ("model", "device", "top class",
                                                               "top part") else "right")
    parts = by_part.set_index("point_key")
    points = by_class.merge(shares[(shares.view == "operator")
                                   & (shares.category == "overhead")][["point_key", "share"]]
                            .rename(columns={"share": "overhead"}), on="point_key", how="left")
    points = order_models(points.sort_values(["device", "batch_size"]))
    for row in points.itertuples():
        table.add_row(row.model, row.device, str(row.batch_size), row.category,
                      f"{row.share:.0%}", parts.loc[row.point_key, "category"],
                      f"{parts.loc[row.point_key, 'share']:.0%}", f"{row.overhead:.0%}",
                      f"{overhead.loc[row.point_key, 'profiler_overhead']:+.0%}")
    console.print(table)
    unknown = unclassified_operators(operators)
    if not unknown.empty:
        console.print(f"operators not in the class table (counted as 'other'): "
                      f"{', '.join(unknown.op)}", highlight=False)
    return write_software_figures(shares, figures_dir)


def hardware_level(store: Any, run_id: str, figures_dir: Path) -> list[Path]:
    """Prints the hardware level of a run (every figure with its source) and writes the
    top-down figure."""
    import json

    from recstack.analysis.topdown import dominant_bottleneck, load_hardware
    from recstack.report.plots import plot_topdown

    hardware = load_hardware(store, [run_id])
    if hardware.empty:
        return []
    bottlenecks = dominant_bottleneck(hardware)
    top = {(r.model, r.batch_size): r.bottleneck for r in bottlenecks.itertuples()}
    table = Table(title="hardware level: top-down and miss rates", header_style="bold")
    for column in ("model", "rows", "batch", "source", "IPC", "L1i MPKI", "L1d MPKI",
                   "LLC MPKI", "branch MPKI", "retiring", "bad spec", "frontend", "backend",
                   "top stall"):
        table.add_column(column, justify="left" if column in ("model", "source", "top stall")
                         else "right")

    def value(number: Any, percent: bool = False) -> str:
        if number is None or number != number:
            return "n/a"  # not measured: never a zero
        return f"{number:.0%}" if percent else f"{number:.3g}"

    for row in hardware.itertuples():
        source = "simulated" if row.source.startswith("simulated") else "measured"
        table.add_row(row.model, f"x{row.row_scale:g}", str(row.batch_size), source,
                      value(row.ipc), value(row.l1i_mpki), value(row.l1d_mpki),
                      value(row.llc_mpki), value(row.branch_mpki),
                      value(row.retiring, True), value(row.bad_speculation, True),
                      value(row.frontend_bound, True), value(row.backend_bound, True),
                      top.get((row.model, row.batch_size), "n/a").replace("_", " "))
    console.print(table)
    for source in sorted(set(hardware.source)):
        console.print(f"source: {source}", highlight=False, markup=False)
    caveats = sorted({c for text in hardware.caveats for c in json.loads(text or "[]")})
    for caveat in caveats:
        console.print(f"caveat: {caveat}", highlight=False, markup=False)
    return [plot_topdown(hardware, figures_dir / "topdown.png")]
