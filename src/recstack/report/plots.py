"""Figures of the systems level (matplotlib, files only: never shown on screen)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.text import Text  # noqa: E402
from matplotlib.ticker import LogFormatter, ScalarFormatter  # noqa: E402

from recstack.text import printable  # noqa: E402


_BACKEND_MARKERS = {"eager": "o", "fused": "s", "compile": "^", "static": "D"}


def latency_series(group: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """One model's latency lines: (label, points by batch size). One line per device and
    thread count when its backends never share a batch size (``--backend auto`` picks one
    per batch size: the label says which where), else one per backend as well (a sweep
    comparing backends)."""
    series = []
    for (device, threads), deployment in group.groupby(["device", "threads"], sort=False):
        name = f"{device} t{threads}"
        if deployment.batch_size.duplicated().any():
            for backend, line in deployment.groupby("backend", sort=False):
                label = name + ("" if backend == "eager" else f" {backend}")
                series.append((label, line.sort_values("batch_size")))
            continue
        line = deployment.sort_values("batch_size")
        runs = _backend_runs(line)
        if len(runs) == 1:
            backend = runs[0][0]
            series.append((name + ("" if backend == "eager" else f" {backend}"), line))
        else:
            series.append((f"{name} " + ", ".join(
                f"{backend} b{first}" + ("" if first == last else f"-{last}")
                for backend, first, last in runs), line))
    return series


def _backend_runs(line: pd.DataFrame) -> list[tuple[str, int, int]]:
    """(backend, first batch size, last batch size) of each run of one backend along a line
    sorted by batch size."""
    runs: list[tuple[str, int, int]] = []
    for backend, size in zip(line.backend, line.batch_size):
        if runs and runs[-1][0] == backend:
            runs[-1] = (backend, runs[-1][1], int(size))
        else:
            runs.append((backend, int(size), int(size)))
    return runs



def latency_axis(axis: Any, model: str, scale: float, ylabel: str) -> None:
    """A latency-against-batch-size panel's axes: log-log, the model named with its table
    scale, a grid and a legend."""
    axis.set_title(model if scale == 1 else f"{model} (rows x{scale:g})")
    axis.set_xscale("log", base=2)
    axis.set_yscale("log")
    axis.set_xlabel("batch size")
    axis.set_ylabel(ylabel)
    axis.grid(True, which="both", alpha=0.3)
    axis.legend(fontsize=7)

def plot_latency_vs_batch(timings: pd.DataFrame, path: Path) -> Path:
    """One panel per model: median latency against batch size, one line per device and
    thread count (and backend, where a sweep compares backends; a point's marker shape says
    its backend), the band between p5 and p95 shaded. Log-log axes."""
    models = list(dict.fromkeys(timings.model))  # in the order given (the zoo's)
    columns = min(4, max(1, len(models)))
    rows = math.ceil(len(models) / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(4 * columns, 3.2 * rows),
                                squeeze=False)
    for axis, model in zip(axes.flat, models):
        group = timings[timings.model == model]
        for label, line in latency_series(group):
            (drawn,) = axis.plot(line.batch_size, line.median_ms, label=label)
            for backend, points in line.groupby("backend"):
                axis.plot(points.batch_size, points.median_ms, linestyle="none",
                          marker=_BACKEND_MARKERS.get(backend, "o"), markersize=3.5,
                          color=drawn.get_color())
            axis.fill_between(line.batch_size, line.p5_ms, line.p95_ms, alpha=0.2)
        latency_axis(axis, model, group.row_scale.iloc[0],
                     "latency (ms, median; p5-p95 band)")
    for axis in list(axes.flat)[len(models):]:
        axis.set_visible(False)
    figure.suptitle("Latency vs batch size")
    figure.tight_layout()
    return _save(figure, path)


def plot_speedup_heatmap(table: pd.DataFrame, value: str, title: str, path: Path) -> Path:
    """A models x batch sizes heatmap of ``value`` (a speedup or gain), annotated."""
    grid = table.pivot_table(index="model", columns="batch_size", values=value, aggfunc="max")
    grid = grid.reindex([m for m in dict.fromkeys(table.model) if m in grid.index])
    figure, axis = plt.subplots(figsize=(1.1 * len(grid.columns) + 3, 0.5 * len(grid) + 1.8))
    data = grid.to_numpy(dtype=float)
    image = axis.imshow(np.log10(np.where(data > 0, data, np.nan)), cmap="viridis",
                        aspect="auto")
    axis.set_xticks(range(len(grid.columns)), [str(c) for c in grid.columns])
    axis.set_yticks(range(len(grid.index)), list(grid.index))
    axis.set_xlabel("batch size")
    for (i, j), cell in np.ndenumerate(data):
        if not np.isnan(cell):
            axis.text(j, i, f"{cell:.3g}x", ha="center", va="center", fontsize=8,
                      color="white" if cell < np.nanmax(data) ** 0.5 else "black")
    colorbar = figure.colorbar(image, ax=axis)
    colorbar.set_label("log10 of " + value)
    axis.set_title(title)
    figure.tight_layout()
    return _save(figure, path)


# Tick labels these formatters make are mathtext on purpose (10^3 on a log axis).
_NUMERIC_FORMATTERS = (LogFormatter, ScalarFormatter)


def _plain_text(figure: plt.Figure) -> None:
    """Every text of ``figure`` that may hold a name (titles, legends, labels, tick labels
    given as strings) as plain text: `$...$` in a name from a spec or a store is drawn as
    it is, never parsed as mathtext (a bad expression would fail the figure, and the store
    would be unreportable), and control characters are shown as escapes (they have no
    glyph). Numbers on numeric axes keep their mathtext."""
    numeric: set[int] = set()
    for axes in figure.axes:
        for axis in (axes.xaxis, axes.yaxis):
            if isinstance(axis.get_minor_formatter(), _NUMERIC_FORMATTERS):
                numeric.update(id(label) for label in axis.get_minorticklabels())
            if isinstance(axis.get_major_formatter(), _NUMERIC_FORMATTERS):
                numeric.update(id(label) for label in axis.get_majorticklabels())
                continue
            labels = [label.get_text() for label in axis.get_majorticklabels()]
            if any(printable(label) != label for label in labels):
                axis.set_ticks(axis.get_majorticklocs(), [printable(label) for label in labels])
    for text in figure.findobj(Text):
        if id(text) not in numeric:
            text.set_parse_math(False)
            text.set_text(printable(text.get_text()))


def _save(figure: plt.Figure, path: Path) -> Path:
    _plain_text(figure)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp" + path.suffix)
    try:
        figure.savefig(temporary, dpi=120)
        temporary.replace(path)  # a figure is either whole or absent
    finally:
        plt.close(figure)
        temporary.unlink(missing_ok=True)
    return path


def write_systems_figures(timings: pd.DataFrame, directory: Path) -> list[Path]:
    """The systems-level figures of a run: latency vs batch, and a speedup heatmap (a device's
    speedup over the CPU where another device was measured; otherwise the CPU's throughput
    gain over batch 1, labelled as such). A configuration measured cold and warm is drawn
    by its cold point (``systems.prefer_cold``; the cache-state section shows both)."""
    from recstack.analysis.systems import batching_gain, prefer_cold, speedup_over_cpu

    if timings.empty:
        return []
    timings = prefer_cold(timings)
    written = [plot_latency_vs_batch(timings, directory / "latency_vs_batch.png")]
    speedups = speedup_over_cpu(timings)
    others = speedups[speedups.device != "cpu"]
    if not others.empty:
        devices = ", ".join(sorted(others.device.unique()))
        written.append(plot_speedup_heatmap(
            others, "speedup", f"{devices} throughput over the best CPU configuration",
            directory / "speedup_heatmap.png"))
    else:
        gains = batching_gain(timings)
        written.append(plot_speedup_heatmap(
            gains[gains.device == "cpu"], "gain",
            "CPU throughput over batch 1 (no other device measured)",
            directory / "speedup_heatmap.png"))
    return written


# A fixed colour per category, so the same class looks the same in every figure.
CATEGORY_COLOURS = {
    "embedding": "#1f77b4", "fc": "#ff7f0e", "interaction": "#2ca02c", "attention": "#d62728",
    "recurrent": "#9467bd", "activation": "#8c564b", "elementwise": "#e377c2",
    "data_movement": "#7f7f7f", "other": "#bcbd22", "overhead": "#d9d9d9",
    "sparse": "#1f77b4", "dense": "#ff7f0e", "wide": "#17becf", "over": "#393b79",
    "input": "#7f7f7f", "unscoped": "#c5b0d5",
}


def plot_breakdown(shares: pd.DataFrame, view: str, path: Path) -> Path:
    """Stacked bars in the paper's style: one bar per model and batch size (CPU and GPU side
    by side where both were measured), one segment per category of ``view``."""
    rows = shares[shares.view == view]
    present = set(rows.category)
    # Stacking order: the work first, "overhead" (time no operator covers) always on top.
    preferred = (["embedding", "fc", "interaction", "attention", "recurrent", "activation",
                  "elementwise", "data_movement", "other"] if view == "operator" else
                 ["input", "sparse", "dense", "wide", "interaction", "attention", "recurrent",
                  "over", "unscoped"])
    categories = ([c for c in preferred if c in present]
                  + sorted(present - set(preferred) - {"overhead"})
                  + (["overhead"] if "overhead" in present else []))
    bars = (rows.groupby(["model", "batch_size", "device", "category"], sort=False)["share"]
            .mean().unstack("category", fill_value=0.0).reindex(columns=categories,
                                                                fill_value=0.0))
    order = list(dict.fromkeys(rows.model))
    bars = bars.reset_index()
    bars["rank"] = bars.model.map({m: i for i, m in enumerate(order)})
    bars = bars.sort_values(["rank", "batch_size", "device"]).reset_index(drop=True)
    positions, position, previous = [], 0.0, None
    for model in bars.model:
        position += 1.6 if previous is not None and model != previous else 1.0
        positions.append(position)
        previous = model
    figure, axis = plt.subplots(figsize=(max(8.0, 0.32 * len(bars) + 3), 4.8))
    bottom = np.zeros(len(bars))
    for category in categories:
        values = bars[category].to_numpy()
        axis.bar(positions, values, bottom=bottom, width=0.85, label=category,
                 color=CATEGORY_COLOURS.get(category), edgecolor="white", linewidth=0.3)
        bottom += values
    labels = [f"{row.model} b{row.batch_size}" + ("" if row.device == "cpu" else
                                                  f" {row.device}")
              for row in bars.itertuples()]
    axis.set_xticks(positions, labels, rotation=90, fontsize=7)
    axis.set_ylim(0, 1)
    axis.set_ylabel("share of inference time")
    what = "operator class" if view == "operator" else "model part"
    axis.set_title(f"Inference time by {what}\n(profiled runs; overhead: time no operator "
                   "covers)", fontsize=10)
    axis.legend(bbox_to_anchor=(1.01, 1), loc="upper left", fontsize=8)
    figure.tight_layout()
    return _save(figure, path)


def write_software_figures(shares: pd.DataFrame, directory: Path) -> list[Path]:
    """The software-level figures: operator-class and model-part breakdowns."""
    if shares.empty:
        return []
    return [plot_breakdown(shares, "operator", directory / "operator_breakdown.png"),
            plot_breakdown(shares, "part", directory / "part_breakdown.png")]


TOPDOWN_COLOURS = {"retiring": "#2ca02c", "bad_speculation": "#d62728",
                   "frontend_bound": "#9467bd", "backend_bound": "#1f77b4"}


def plot_topdown(hardware: pd.DataFrame, path: Path) -> Path:
    """Stacked level-1 top-down bars, one per model and batch size, titled with the source
    (measured or simulated) of the figures."""
    rows = hardware.dropna(subset=list(TOPDOWN_COLOURS))
    figure, axis = plt.subplots(figsize=(max(7.0, 0.45 * len(rows) + 3), 4.6))
    positions, position, previous = [], 0.0, None
    for model in rows.model:
        position += 1.6 if previous is not None and model != previous else 1.0
        positions.append(position)
        previous = model
    bottom = np.zeros(len(rows))
    for category, colour in TOPDOWN_COLOURS.items():
        values = rows[category].to_numpy(dtype=float)
        axis.bar(positions, values, bottom=bottom, width=0.85, color=colour,
                 label=category.replace("_", " "), edgecolor="white", linewidth=0.3)
        bottom += values
    axis.set_xticks(positions, [f"{r.model} b{r.batch_size}" for r in rows.itertuples()],
                    rotation=90, fontsize=7)
    axis.set_ylim(0, 1)
    axis.set_ylabel("share of pipeline slots")
    sources = sorted(set(rows.source))
    axis.set_title("Top-down level 1 - " + "; ".join(sources), fontsize=9)
    axis.legend(bbox_to_anchor=(1.01, 1), loc="upper left", fontsize=8)
    figure.tight_layout()
    return _save(figure, path)
