"""The correlation figures are drawn from a result, one set per analysed group."""

from __future__ import annotations

from pathlib import Path

import matplotlib.image as mpimg

from recstack.analysis.correlation import DOMINANCE_THRESHOLD, correlate
from recstack.report.correlation import write_correlation_figures
from tests.analysis.test_correlation import synthetic


def test_every_group_gets_a_heatmap_an_importance_chart_and_a_dominance_chart(
        tmp_path: Path) -> None:
    import pandas as pd

    table = pd.concat([synthetic(batch_size=1), synthetic(seed=1, batch_size=64)],
                      ignore_index=True).rename(columns={"one": "share_embedding",
                                                         "four": "latency_ms"})
    written = write_correlation_figures(correlate(table), tmp_path, DOMINANCE_THRESHOLD)
    assert sorted(p.name for p in written) == sorted(
        f"correlation-{kind}-b{b}-cpu-t1-eager.png" for kind in
        ("heatmap", "importance", "dominance") for b in (1, 64))
    for path in written:
        pixels = mpimg.imread(path)
        assert pixels.shape[0] > 150 and pixels.std() > 0.05  # drawn, not blank
