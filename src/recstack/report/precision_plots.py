"""The precision figure: each reduced precision's speedup over fp32 against batch size, per
model (matplotlib, files only)."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from recstack.report.plots import _save, plt

_MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*"]
DEPLOYMENT = ["run_id", "platform_id", "device", "threads", "backend", "cache_state"]


def plot_speedup_by_precision(table: pd.DataFrame, path: Path) -> Path:
    """One panel per model (and table size): the speedup over the fp32 point of the same
    configuration (``analysis.precision.precision_table``'s frame; points without an fp32
    twin left out) against batch size, one line per reduced precision and colour per
    precision; where a panel holds several deployments (device, threads, backend, cache
    state, run, platform), one line per deployment as well, labelled with it. The dotted
    line at 1 is fp32. Batch size on a log axis."""
    from recstack.precision import REFERENCE

    points = table[(table.precision != REFERENCE) & table.speedup.notna()]
    precisions = list(dict.fromkeys(points.precision))
    colour = {p: f"C{i % 10}" for i, p in enumerate(precisions)}
    marker = {p: _MARKERS[i % len(_MARKERS)] for i, p in enumerate(precisions)}
    panels = list(dict.fromkeys(zip(points.model, points.row_scale)))
    columns = min(4, max(1, len(panels)))
    rows = max(1, math.ceil(len(panels) / columns))
    figure, axes = plt.subplots(rows, columns, figsize=(4 * columns, 3.2 * rows),
                                squeeze=False)
    for axis, (model, scale) in zip(axes.flat, panels):
        panel = points[(points.model == model) & (points.row_scale == scale)]
        deployment = [c for c in DEPLOYMENT if c in panel.columns]
        varying = [c for c in deployment if panel[c].nunique(dropna=False) > 1]
        for precision in precisions:
            own = panel[panel.precision == precision]
            for key, line in own.groupby(deployment, sort=True, dropna=False):
                line = line.sort_values("batch_size")
                where = dict(zip(deployment, key))
                label = precision + (f" ({_deployment(where, varying)})" if varying else "")
                axis.plot(line.batch_size, line.speedup, label=label, color=colour[precision],
                          marker=marker[precision], markersize=4)
        axis.axhline(1.0, color="grey", linestyle=":", linewidth=1, label="fp32")
        axis.set_title(model if scale == 1 else f"{model} (rows x{scale:g})")
        axis.set_xscale("log", base=2)
        axis.set_xlabel("batch size")
        axis.set_ylabel("speedup over fp32 (x)")
        axis.grid(True, which="both", alpha=0.3)
        axis.legend(fontsize=7)
    for axis in list(axes.flat)[len(panels):]:
        axis.set_visible(False)
    figure.suptitle("Speedup over fp32 vs batch size, per precision")
    figure.tight_layout()
    return _save(figure, path)


def _deployment(where: dict[str, object], varying: list[str]) -> str:
    """What tells a line from the panel's others: its values of the ``varying`` columns."""
    shown = {"run_id": "run {}", "platform_id": "on {}", "device": "{}", "threads": "t{}",
             "backend": "{}", "cache_state": "{}"}
    return " ".join(shown[c].format(where[c]) for c in DEPLOYMENT if c in varying)
