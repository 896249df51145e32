"""The roofline figure: every point's attained throughput against its operational intensity,
under the machine's measured roofs (matplotlib, files only)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from recstack.report.plots import _save, plt


MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "<", ">")


def _roof_value(ceilings: pd.DataFrame, kind: str, shape: str | None = None) -> float | None:
    rows = ceilings[ceilings.kind == kind]
    if shape is not None:
        rows = rows[rows["shape"] == shape]
    return float(rows.value.max()) if not rows.empty else None


def plot_roofline(table: pd.DataFrame, ceilings: pd.DataFrame, path: Path) -> Path:
    """Log-log roofline: x = operational intensity (FLOP/byte), y = attained GFLOP/s, one
    colour and marker shape per model (points of two models at the same place stay told
    apart), marker size growing with the batch size (each point labelled with it); roofs:
    the large-GEMM ceiling (compute), DRAM triad bandwidth (solid slope), the random-gather
    bandwidth from the large gather buffer (dashed slope) and the fastest gather measured
    from tables of a model's own size and run length (dash-dot: smaller tables gather
    faster, so a model with small tables can sit above the dashed roof).

    ``table`` is :func:`recstack.analysis.roofline.roofline_table`'s frame; ``ceilings`` the
    rows of the ``ceilings`` table of the platform and thread count it was measured with.
    """
    path = Path(path)
    points = table.dropna(subset=["operational_intensity", "attained_gflops"])
    figure, axis = plt.subplots(figsize=(8, 5.5))
    intensity = points.operational_intensity.to_numpy(dtype=float)
    low = min([0.01, *(intensity[intensity > 0] / 3)]) if len(intensity) else 0.01
    high = max([1000.0, *(intensity * 3)]) if len(intensity) else 1000.0
    x = np.logspace(np.log10(low), np.log10(high), 200)
    peak = _roof_value(ceilings, "gemm_large")
    roofs = [("triad_dram", "DRAM triad", "-"), ("gather_dram", "random gather", "--"),
             ("gather_table", "fastest per-table gather", "-.")]
    for kind, label, style in roofs:
        bandwidth = _roof_value(ceilings, kind)
        if bandwidth is None:
            continue
        y = bandwidth * x if peak is None else np.minimum(bandwidth * x, peak)
        axis.plot(x, y, style, color="black", linewidth=1.2,
                  label=f"{label} {bandwidth:.3g} GB/s")
    if peak is not None:
        axis.axhline(peak, color="grey", linewidth=1.0, linestyle=":",
                     label=f"large GEMM {peak:.3g} GFLOP/s")
    colours = plt.get_cmap("tab10")
    for index, (model, group) in enumerate(points.groupby("model", sort=False)):
        sizes = 12 + 10 * np.log2(group.batch_size.to_numpy(dtype=float) + 1)
        axis.scatter(group.operational_intensity, group.attained_gflops, s=sizes,
                     color=colours(index % 10), alpha=0.6, label=model,
                     marker=MARKERS[index % len(MARKERS)], edgecolors="black",
                     linewidths=0.4)
        for row in group.itertuples(index=False):
            axis.annotate(str(row.batch_size), (row.operational_intensity, row.attained_gflops),
                          fontsize=6, xytext=(3, 2), textcoords="offset points")
    axis.set_xscale("log")
    axis.set_yscale("log")
    axis.set_xlabel("operational intensity (FLOP / byte, per batch)")
    axis.set_ylabel("attained GFLOP/s (at the median latency)")
    threads = sorted(set(points.threads)) if "threads" in points else []
    title = "Roofline" + (f" ({', '.join(str(t) for t in threads)} thread(s))" if threads else "")
    axis.set_title(title + "; labels: batch size")
    axis.grid(True, which="both", alpha=0.3)
    axis.legend(fontsize=7, loc="lower right")
    figure.tight_layout()
    return _save(figure, path)
