"""Figures of the cross-stack correlation (matplotlib, files only)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from recstack.report.plots import _save, plt

if TYPE_CHECKING:
    from recstack.analysis.correlation import CorrelationResult

# Importance panels show this many features per bottleneck, strongest first.
TOP_FEATURES = 6


def _group_label(frame: pd.DataFrame) -> str:
    row = frame.iloc[0]
    return f"batch {row.batch_size}, {row.device}, {row.threads} threads, {row.backend}"


def plot_correlation_heatmap(correlations: pd.DataFrame, path: Path,
                             method: str = "spearman") -> Path:
    """Features (rows) x bottlenecks (columns) coloured by r, for one group; cells whose
    correlation survives the false-discovery control are marked with an asterisk."""
    rows = correlations[correlations.method == method]
    r = rows.pivot(index="feature", columns="bottleneck", values="r")
    significant = rows.pivot(index="feature", columns="bottleneck", values="significant")
    features = list(dict.fromkeys(rows.feature))
    bottlenecks = list(dict.fromkeys(rows.bottleneck))
    r = r.reindex(index=features, columns=bottlenecks)
    significant = significant.reindex(index=features, columns=bottlenecks)
    figure, axis = plt.subplots(figsize=(max(5.0, 2.5 + 0.55 * len(bottlenecks)),
                                         1.6 + 0.3 * len(features)))
    image = axis.imshow(r.to_numpy(float), cmap="RdBu_r", vmin=-1, vmax=1, aspect="auto")
    axis.set_xticks(range(len(bottlenecks)), bottlenecks, rotation=60, ha="right", fontsize=8)
    axis.set_yticks(range(len(features)), features, fontsize=8)
    for i in range(len(features)):
        for j in range(len(bottlenecks)):
            if significant.iat[i, j] is True or significant.iat[i, j] == 1:
                axis.text(j, i, "*", ha="center", va="center", fontsize=9)
    colorbar = figure.colorbar(image, ax=axis, fraction=0.04)
    colorbar.set_label(f"{method} r")
    axis.set_title(f"Features vs bottlenecks ({method}; * significant at FDR 5%)\n"
                   f"{_group_label(rows)}, {rows.n.max()} variants", fontsize=9)
    figure.tight_layout()
    return _save(figure, path)


def plot_importance(importance: pd.DataFrame, path: Path) -> Path:
    """One panel per bottleneck: its strongest features by random-forest importance."""
    bottlenecks = list(dict.fromkeys(importance.bottleneck))
    columns = min(4, len(bottlenecks))
    rows = math.ceil(len(bottlenecks) / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(3.4 * columns, 2.3 * rows),
                                squeeze=False)
    for axis, bottleneck in zip(axes.flat, bottlenecks):
        top = importance[importance.bottleneck == bottleneck].nsmallest(TOP_FEATURES, "rank")
        axis.barh(range(len(top)), top.importance.to_numpy(), color="#4c72b0")
        axis.set_yticks(range(len(top)), list(top.feature), fontsize=7)
        axis.invert_yaxis()
        axis.set_xlim(0, 1)
        axis.set_title(bottleneck, fontsize=8)
        axis.tick_params(axis="x", labelsize=7)
    for axis in list(axes.flat)[len(bottlenecks):]:
        axis.set_visible(False)
    figure.suptitle(f"Ranked feature importance (random forest), {_group_label(importance)}",
                    fontsize=9)
    figure.tight_layout()
    return _save(figure, path)


def plot_dominance(dominance: pd.DataFrame, threshold: float, path: Path) -> Path:
    """Per bottleneck, the share of explained variance of its strongest single feature, the
    feature named on its bar, with the threshold above which one feature dominates."""
    frame = dominance.reset_index(drop=True)
    figure, axis = plt.subplots(figsize=(7.5, 1.0 + 0.32 * len(frame)))
    shares = frame.strongest_share.to_numpy(float)
    colours = ["#c44e52" if s >= threshold else "#4c72b0" for s in np.nan_to_num(shares)]
    axis.barh(range(len(frame)), np.nan_to_num(shares), color=colours)
    for i, row in frame.iterrows():
        text = row.strongest_feature if row.strongest_share == row.strongest_share \
            else "no variance explained"
        axis.text(0.01, i, text, va="center", fontsize=7, color="white"
                  if (row.strongest_share or 0) > 0.3 else "black")
    axis.axvline(threshold, color="black", linestyle="--", linewidth=1)
    axis.set_yticks(range(len(frame)), list(frame.bottleneck), fontsize=8)
    axis.invert_yaxis()
    axis.set_xlim(0, 1)
    axis.set_xlabel("share of explained variance carried by the strongest single feature")
    axis.set_title(f"Does one feature dominate? (dashed: {threshold:g}), "
                   f"{_group_label(frame)}", fontsize=9)
    figure.tight_layout()
    return _save(figure, path)


GROUP = ["batch_size", "device", "threads", "backend"]


def _select(frame: pd.DataFrame, key: tuple) -> pd.DataFrame:
    mask = np.ones(len(frame), dtype=bool)
    for column, value in zip(GROUP, key):
        mask &= (frame[column] == value).to_numpy()
    return frame[mask]


def write_correlation_figures(result: CorrelationResult, directory: Path, threshold: float
                              ) -> list[Path]:
    """Heatmap, importance and dominance figures for every analysed group of ``result``."""
    written = []
    for key, frame in result.correlations.groupby(GROUP):
        batch, device, threads, backend = key
        suffix = f"b{batch}-{device}-t{threads}-{backend}".replace(":", "")
        written.append(plot_correlation_heatmap(
            frame, directory / f"correlation-heatmap-{suffix}.png"))
        importance = _select(result.importance, key)
        if not importance.empty:
            written.append(plot_importance(importance,
                                           directory / f"correlation-importance-{suffix}.png"))
        dominance = _select(result.dominance, key)
        if not dominance.empty:
            written.append(plot_dominance(dominance, threshold,
                                          directory / f"correlation-dominance-{suffix}.png"))
    return written
