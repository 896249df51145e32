"""Figures are written, whole, and show something."""

from __future__ import annotations

from pathlib import Path

import matplotlib.image
import pandas as pd

from recstack.report.plots import write_systems_figures
from tests.analysis.test_systems import timing


def assert_not_blank(path: Path) -> None:
    assert path.is_file() and path.stat().st_size > 10_000
    pixels = matplotlib.image.imread(path)
    assert pixels.std() > 0.05  # not a single colour


def test_cpu_only_figures(tmp_path: Path) -> None:
    timings = pd.DataFrame([timing(m, "cpu", t, b, b * 0.1 + 0.5)
                            for m in ("rmc1", "din") for t in (1, 2) for b in (1, 16, 256)])
    written = write_systems_figures(timings, tmp_path / "figures")
    assert [p.name for p in written] == ["latency_vs_batch.png", "speedup_heatmap.png"]
    for path in written:
        assert_not_blank(path)
    assert not list((tmp_path / "figures").glob("*.tmp*"))


def test_gpu_figures(tmp_path: Path) -> None:
    timings = pd.DataFrame([timing("rmc1", d, 1, b, b * (0.1 if d == "cpu" else 0.01) + 0.5)
                            for d in ("cpu", "cuda") for b in (1, 16, 256)])
    written = write_systems_figures(timings, tmp_path)
    assert len(written) == 2
    for path in written:
        assert_not_blank(path)


def test_no_timings_no_figures(tmp_path: Path) -> None:
    assert write_systems_figures(pd.DataFrame(), tmp_path) == []
