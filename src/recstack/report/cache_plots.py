"""The cache-state figure: cold against warm latency per model and batch size (matplotlib,
files only)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from recstack.report.plots import _save, plt

COLD, WARM = "#1f77b4", "#ff7f0e"


def plot_cache_comparison(pairs: pd.DataFrame, path: Path) -> Path:
    """Side-by-side bars of the warm and the cold median latency of every configuration
    measured both ways (``views.cache_comparison``'s frame, in its order), one pair per
    model and batch size, each cold bar annotated with cold over warm. Log latency axis."""
    labels = [f"{r.model} b{r.batch_size}" + ("" if r.device == "cpu" else f" {r.device}")
              for r in pairs.itertuples()]
    positions = np.arange(len(pairs), dtype=float)
    figure, axis = plt.subplots(figsize=(max(6.0, 0.9 * len(pairs) + 2.5), 4.4))
    axis.bar(positions - 0.2, pairs.warm_ms, width=0.4, color=WARM,
             label="warm (a few batches cycled)")
    from recstack.working_set import COLD_LLC_MULTIPLE

    bars = axis.bar(positions + 0.2, pairs.cold_ms, width=0.4, color=COLD,
                    label=f"cold (working set >= {COLD_LLC_MULTIPLE:g}x LLC, or every row)")
    for bar, ratio in zip(bars, pairs.cold_over_warm):
        axis.annotate(f"{ratio:.2g}x", (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                      ha="center", va="bottom", fontsize=7)
    axis.set_xticks(positions, labels, rotation=45, ha="right", fontsize=8)
    axis.set_yscale("log")
    axis.set_ylabel("median latency (ms)")
    axis.set_title("Cold vs warm embedding caches (cold over warm above each cold bar)",
                   fontsize=10)
    axis.grid(True, axis="y", which="both", alpha=0.3)
    axis.legend(fontsize=8)
    figure.tight_layout()
    return _save(figure, path)
