"""The hardware level through the sweep: simulated here (no PMU), labelled, stored, drawn."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import matplotlib.image
import pandas as pd
import pytest

from recstack.analysis.topdown import dominant_bottleneck, load_hardware, topdown_table
from recstack.collect.timing import TimingSettings
from recstack.report.plots import plot_topdown
from recstack.store import ResultStore
from recstack.sweep import plan_sweep, run_sweep
from tests.test_doctor import pmu_counts_here

pytestmark = pytest.mark.skipif(shutil.which("valgrind") is None or pmu_counts_here(),
                                reason="needs valgrind and a machine without hardware "
                                       "counters (where the hardware level is simulated)")
SETTINGS = TimingSettings(warmup_iterations=1, warmup_seconds=0.0, min_seconds=0.05,
                          min_iterations=5)


@pytest.fixture(scope="module")
def hardware(tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    plan = plan_sweep(["rmc1"], [4], [1], ["cpu"], row_scale=1e-4, levels=["hardware"])
    assert plan.options.hardware_mode == "simulated"
    assert any(note.startswith("hardware level: simulated (no hardware counters")
               for note in plan.notes)
    store = ResultStore(tmp_path_factory.mktemp("hw") / "r.duckdb")
    run_id = store.create_run("test", SETTINGS.to_dict(), {}, "p", "test machine")
    outcome = run_sweep(plan, store, run_id, SETTINGS)
    assert not outcome.failed, outcome.failed
    return load_hardware(store)


def test_simulated_point_is_stored_and_labelled(hardware: pd.DataFrame) -> None:
    (row,) = hardware.itertuples()
    assert row.source.startswith("simulated (valgrind")
    assert row.hierarchy == "host"
    assert row.instructions > 0 and row.l1d_mpki > 0 and row.branch_mpki > 0
    assert pd.isna(row.dtlb_mpki)  # not simulated: stored as NULL, never 0
    fractions = [row.retiring, row.bad_speculation, row.frontend_bound, row.backend_bound]
    assert sum(fractions) == pytest.approx(1.0)
    assert any("AVX2" in caveat for caveat in json.loads(row.caveats))


def test_topdown_tables_and_figure(hardware: pd.DataFrame, tmp_path: Path) -> None:
    long = topdown_table(hardware)
    assert set(long.category) == {"retiring", "bad_speculation", "frontend_bound",
                                  "backend_bound"}
    (bottleneck,) = dominant_bottleneck(hardware).itertuples()
    assert bottleneck.bottleneck in ("bad_speculation", "frontend_bound", "backend_bound")
    path = plot_topdown(hardware, tmp_path / "topdown.png")
    pixels = matplotlib.image.imread(path)
    assert path.stat().st_size > 10_000 and pixels.std() > 0.05
