"""The roofline figure is written, whole and non-empty (named apart from
tests/analysis/test_roofline.py: test directories are not packages)."""

from __future__ import annotations

import pandas as pd

from recstack.report.roofline import plot_roofline


def ceilings_frame() -> pd.DataFrame:
    return pd.DataFrame({"kind": ["triad_dram", "gather_dram", "gather_dram", "gather_table",
                                  "gemm_large"],
                         "shape": ["1000 B", "row 4 B", "row 128 B",
                                   "row 128 B, table 1000 B, ids 10", "64x64x64"],
                         "value": [10.0, 0.1, 2.0, 3.0, 100.0]})


def test_plot_roofline_writes_a_png(tmp_path):
    table = pd.DataFrame({
        "model": ["rmc1", "rmc1", "ncf"], "batch_size": [1, 1024, 16], "threads": [1, 1, 1],
        "operational_intensity": [0.4, 2.5, 20.0], "attained_gflops": [0.02, 2.0, 30.0]})
    path = plot_roofline(table, ceilings_frame(), tmp_path / "figures" / "roofline.png")
    assert path.is_file() and path.stat().st_size > 10_000
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(path.parent.glob("*.tmp*"))
