"""The fleet figure: each platform's median latency per model and batch size (matplotlib,
files only)."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from recstack.report.plots import _save, latency_axis, plt

# A marker shape per platform as well as a colour: lines that overlap stay told apart.
_PLATFORM_MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*"]


def plot_latency_by_platform(per_platform: pd.DataFrame, path: Path) -> Path:
    """One panel per model (and table size): each platform's fastest median latency against
    batch size (``analysis.fleet.best_per_platform``'s frame), one line and marker shape per
    platform, labelled with its id (and the cache state, where a panel holds both, and the
    precision, where it holds several: a line never joins two precisions). Log-log axes."""
    from recstack.analysis.systems import precision_labels

    per_platform = per_platform.assign(precision=precision_labels(per_platform))
    platforms = sorted(str(p) for p in per_platform.platform_id.unique())
    marker = {p: _PLATFORM_MARKERS[i % len(_PLATFORM_MARKERS)] for i, p in enumerate(platforms)}
    colour = {p: f"C{i % 10}" for i, p in enumerate(platforms)}
    panels = list(dict.fromkeys(zip(per_platform.model, per_platform.row_scale)))
    columns = min(4, max(1, len(panels)))
    rows = math.ceil(len(panels) / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(4 * columns, 3.2 * rows),
                                squeeze=False)
    for axis, (model, scale) in zip(axes.flat, panels):
        panel = per_platform[(per_platform.model == model) & (per_platform.row_scale == scale)]
        states = panel.cache_state.nunique() > 1
        precisions = panel.precision.nunique() > 1
        for (platform, state, precision), line in panel.groupby(
                ["platform_id", "cache_state", "precision"], sort=True):
            line = line.sort_values("batch_size")
            label = (str(platform) + (f" ({state})" if states else "")
                     + (f" {precision}" if precisions else ""))
            axis.plot(line.batch_size, line.median_ms, label=label,
                      color=colour[str(platform)], marker=marker[str(platform)],
                      markersize=4, linestyle="--" if states and state == "warm" else "-")
        latency_axis(axis, model, scale, "median latency (ms)")
    for axis in list(axes.flat)[len(panels):]:
        axis.set_visible(False)
    figure.suptitle("Latency vs batch size per platform (its fastest deployment)")
    figure.tight_layout()
    return _save(figure, path)
