"""The serving level's figures (matplotlib, files only): each deployment's tail latency
against the offered rate, and the tuned deployment's latency-bounded QPS against the
baseline's. Every file name starts with ``serving_``; a run without serving points gets none.
They draw the frames of :mod:`recstack.analysis.serving` and compute nothing."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.lines import Line2D
from matplotlib.ticker import LogFormatter

from recstack.report.plots import _save, plt

BASELINE, TUNED, TARGET = "#6e7781", "#1f6feb", "#cf222e"
CURVES_FILE, TUNED_FILE = "serving_latency_vs_qps.png", "serving_tuned_vs_baseline.png"


def _at(curve: pd.DataFrame, rate: float) -> pd.DataFrame:
    """The test of ``curve`` offered ``rate`` (none when ``rate`` is missing)."""
    if rate is None or pd.isna(rate):
        return curve.iloc[0:0]
    return curve[np.isclose(curve.offered_qps.astype(float), float(rate), rtol=1e-9)]


def plot_latency_vs_qps(curves: pd.DataFrame, deployments: pd.DataFrame, path: Path) -> Path:
    """One panel per model: LoadGen's tail latency (at the point's percentile) against the
    offered Poisson rate of every server test, one line per deployment (``curves``: the
    frame ``serving.load_curves`` returns; ``deployments``: ``serving.deployment_table``'s,
    for each point's role, knee and latency-bounded QPS). Tests LoadGen judged INVALID are
    hollow; a triangle marks each deployment's knee, a star its latency-bounded QPS; the
    dotted line is the latency bound. The baseline is drawn grey and dashed, the tuned
    deployment thicker. Log-log axes: one deployment may saturate at a rate many times
    below another's."""
    models = list(dict.fromkeys(deployments.model))  # in the order given (the zoo's)
    columns = min(2, max(1, len(models)))
    rows = math.ceil(len(models) / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(6.6 * columns, 6.4 * rows),
                                squeeze=False)
    for axis, model in zip(axes.flat, models):
        points = deployments[deployments.model == model]
        for point in points.itertuples():
            curve = curves[(curves.run_id == point.run_id)
                           & (curves.point_key == point.point_key)].sort_values("offered_qps")
            if curve.empty:
                continue
            baseline, tuned = "baseline" in point.role, "tuned" in point.role
            label = point.deployment + (f" ({point.role})" if point.role else "")
            style = {"color": BASELINE, "linestyle": "--"} if baseline else {}
            (line,) = axis.plot(curve.offered_qps, curve.tail_ms, label=label,
                                linewidth=2.4 if tuned else 1.3, **style)
            colour = line.get_color()
            valid = curve.valid.fillna(False).astype(bool)
            axis.scatter(curve.offered_qps[valid], curve.tail_ms[valid], s=22, color=colour,
                         zorder=3)
            axis.scatter(curve.offered_qps[~valid], curve.tail_ms[~valid], s=26,
                         facecolors="none", edgecolors=colour, linewidths=1.3, zorder=3)
            for rate, marker, size in ((point.knee_qps, "^", 80),
                                       (point.latency_bounded_qps, "*", 170)):
                mark = _at(curve, rate)
                axis.scatter(mark.offered_qps, mark.tail_ms, marker=marker, s=size,
                             color=colour, edgecolors="black", linewidths=0.7, zorder=4)
        for (target, percentile), _ in points.groupby(["target_ms", "percentile"]):
            axis.axhline(target, color=TARGET, linestyle=":", linewidth=1.4,
                         label=f"bound: p{percentile:g} <= {target:g} ms")
        scale = points.row_scale.iloc[0]
        axis.set_title(model if scale == 1 else f"{model} (rows x{scale:g})")
        axis.set_xscale("log")
        axis.set_yscale("log")
        for scale in (axis.xaxis, axis.yaxis):  # plain numbers (400, not 4x10^2)
            scale.set_major_formatter(LogFormatter(labelOnlyBase=False))
            scale.set_minor_formatter(LogFormatter(labelOnlyBase=False,
                                                   minor_thresholds=(1.5, 0.6)))
        axis.set_xlabel("offered load (queries/s, Poisson arrivals)")
        percentiles = "/".join(f"p{p:g}" for p in sorted(set(points.percentile)))
        axis.set_ylabel(f"{percentiles} latency (ms, LoadGen)")
        axis.grid(True, which="both", alpha=0.3)
        handles, _ = axis.get_legend_handles_labels()
        handles += [Line2D([], [], marker="^", color="grey", markeredgecolor="black",
                           linestyle="none", label="knee"),
                    Line2D([], [], marker="*", markersize=10, color="grey",
                           markeredgecolor="black", linestyle="none",
                           label="latency-bounded QPS (highest VALID rate)"),
                    Line2D([], [], marker="o", color="grey", markerfacecolor="none",
                           linestyle="none", label="INVALID test (LoadGen)")]
        axis.legend(handles=handles, fontsize=7, loc="upper center", ncol=2,
                    bbox_to_anchor=(0.5, -0.16))
    for axis in list(axes.flat)[len(models):]:
        axis.set_visible(False)
    figure.suptitle("Serving: tail latency vs offered load, per deployment")
    figure.tight_layout()
    return _save(figure, path)


def plot_tuned_vs_baseline(tuned: pd.DataFrame, path: Path) -> Path:
    """Per model tuned (``serving.tuned_vs_baseline``'s rows), the baseline's and the tuned
    deployment's latency-bounded QPS side by side, the gain written on the tuned bar (and
    whether tuning kept the baseline); the tuned deployment named under its model."""
    positions = np.arange(len(tuned), dtype=float)
    figure, axis = plt.subplots(figsize=(max(5.5, 2.6 * len(tuned) + 1.5), 4.6))
    base = axis.bar(positions - 0.2, tuned.baseline_qps.fillna(0.0).astype(float),
                    width=0.4, color=BASELINE,
                    label="baseline: 1 single-threaded engine per core, whole requests")
    best = axis.bar(positions + 0.2, tuned.tuned_qps.fillna(0.0).astype(float), width=0.4,
                    color=TUNED, label="tuned: best deployment measured")
    for bar, value in zip(base, tuned.baseline_qps):
        axis.annotate("no valid rate" if pd.isna(value) else f"{value:,.0f}",
                      (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                      ha="center", va="bottom", fontsize=7)
    for bar, row in zip(best, tuned.itertuples()):
        if pd.isna(row.tuned_qps):
            text = "no valid rate"
        elif row.tuned_key == row.baseline_key:
            text = f"{row.tuned_qps:,.0f}\n1.00x (baseline kept)"
        else:
            gain = "n/a" if pd.isna(row.gain) else f"{row.gain:.2f}x"
            text = f"{row.tuned_qps:,.0f}\n{gain}"
        axis.annotate(text, (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                      ha="center", va="bottom", fontsize=8, fontweight="bold")
    labels = [f"{r.model} (p{r.percentile:g} <= {r.target_ms:g} ms)\ntuned: "
              + r.tuned.replace(", ", ",\n") + f"\n{r.deployments} deployments"
              for r in tuned.itertuples()]
    axis.set_xticks(positions, labels, fontsize=7)
    axis.set_ylabel("latency-bounded QPS (highest VALID offered rate)")
    axis.set_ylim(0, max(1.0, float(np.nanmax(np.r_[tuned.baseline_qps.astype(float),
                                                     tuned.tuned_qps.astype(float), 0.0])))
                  * 1.25)
    axis.set_title("Serving: tuned deployment vs baseline (gain on the tuned bar)",
                   fontsize=10)
    axis.grid(True, axis="y", alpha=0.3)
    axis.legend(fontsize=7, loc="upper right")
    figure.tight_layout()
    return _save(figure, path)


def write_serving_figures(serving: pd.DataFrame, tests: pd.DataFrame,
                          directory: Path) -> list[Path]:
    """The serving figures of one run's points (``serving.load_serving`` and
    ``load_serving_tests``' frames) in ``directory``: latency vs offered load where a
    server test ran, tuned vs baseline where a model was tuned. None without serving
    points."""
    from recstack.analysis.serving import deployment_table, load_curves, tuned_vs_baseline

    if serving.empty:
        return []
    written = []
    curves = load_curves(tests)
    if not curves.empty:
        written.append(plot_latency_vs_qps(curves, deployment_table(serving, tests),
                                           Path(directory) / CURVES_FILE))
    tuned = tuned_vs_baseline(serving, tuned_only=True)
    if not tuned.empty:
        written.append(plot_tuned_vs_baseline(tuned, Path(directory) / TUNED_FILE))
    return written
