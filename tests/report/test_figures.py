"""A run's figures written apart from printing, and the summaries printed apart from
figures, on a constructed store of all three levels."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from recstack.analysis.systems import LatencyTargets, load_timings
from recstack.cli import summaries
from recstack.cli.app import console
from recstack.collect.timing import timing_stats
from recstack.records import TimingRecord
from recstack.report.figures import write_run_figures
from recstack.store import ResultStore
from recstack.text import MISSING
from tests import fill

POINT = {"model": "rmc1", "model_type": "dlrm", "row_scale": 1.0, "device": "cpu",
         "threads": 1, "backend": "eager"}


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> tuple[ResultStore, str]:
    store = ResultStore(tmp_path_factory.mktemp("figures") / "r.duckdb")
    run_id = store.create_run("test", {}, {}, "p", "machine")
    for batch, median_ms in ((1, 1.0), (8, 2.0)):
        latencies = [int(median_ms * 1e6) + 1000 * i for i in range(20)]
        samples = pd.DataFrame({"iteration": range(20), "latency_ns": latencies})
        store.record_point(run_id, f"t{batch}", fill.point(
            config_key=f"c{batch}", level="timing", batch_size=batch, **POINT),
            TimingRecord(samples, timing_stats(latencies, batch)))
    operators = pd.DataFrame({"part": ["sparse", "dense"],
                              "op": ["aten::embedding_bag", "aten::linear"],
                              "calls": [1.0, 1.0], "time_us": [700.0, 200.0]})
    store.record_point(run_id, "o8", fill.point(config_key="c8", level="operators",
                                                batch_size=8, **POINT),
                       fill.profile(operators, iterations=5, time_basis="cpu", wall_us=1000.0,
                                    operator_us=900.0, uncovered_us=100.0,
                                    profiled_median_us=2400.0, unprofiled_median_us=2100.0,
                                    profiler_overhead=0.14))
    store.record_point(run_id, "h1", fill.point(config_key="h1", level="hardware",
                                                batch_size=1, **POINT),
                       fill.hardware(source="simulated (valgrind, host)", hierarchy="host",
                                     ipc=1.5, retiring=0.3, bad_speculation=0.1,
                                     frontend_bound=0.2, backend_bound=0.4,
                                     caveats=["no AVX2 in the simulator"]))
    return store, run_id


def test_write_run_figures_writes_every_level(store: tuple[ResultStore, str],
                                              tmp_path: Path) -> None:
    results, run_id = store
    written = write_run_figures(results, run_id, tmp_path / "figures")
    assert [path.name for path in written] == [
        "latency_vs_batch.png", "speedup_heatmap.png", "operator_breakdown.png",
        "part_breakdown.png", "topdown.png"]
    for path in written:
        assert path.read_bytes().startswith(b"\x89PNG")


def test_a_run_without_points_has_no_figures(tmp_path: Path) -> None:
    results = ResultStore(tmp_path / "r.duckdb")
    run_id = results.create_run("test", {}, {}, "p", "machine")
    assert write_run_figures(results, run_id, tmp_path / "figures") == []


def test_summaries_print_and_write_nothing(store: tuple[ResultStore, str],
                                          tmp_path: Path, monkeypatch) -> None:
    results, run_id = store
    monkeypatch.chdir(tmp_path)
    timings = load_timings(results, [run_id])
    with console.capture() as captured:
        console.print(summaries.points_table(timings))
        summaries.print_summary(timings, LatencyTargets({}, 25.0, "test targets"))
        summaries.print_software_level(results, run_id)
        summaries.print_hardware_level(results, run_id)
    text = captured.get()
    assert "systems level: latency, throughput and deployment choice" in text
    assert "software level: dominant operator class and model part" in text
    assert "embedding" in text and "sparse" in text
    assert "hardware level: top-down and miss rates" in text and "backend bound" in text
    assert "source: simulated (valgrind, host)" in text
    assert "caveat: no AVX2 in the simulator" in text
    assert MISSING in text  # the L1 and LLC rates the point did not measure
    assert list(tmp_path.iterdir()) == []


def test_a_run_of_two_precisions_gets_figures_per_precision(tmp_path: Path) -> None:
    """tests/analysis/test_precision.py's store (rmc1 in fp32 and in int8 tables, profiled
    in both): a folder of figures per precision, never one figure of both; and the printed
    summaries name the reduced precision beside the model."""
    from tests.analysis.test_precision import make_precision_store

    store, run_id = make_precision_store(tmp_path)
    written = write_run_figures(store, run_id, tmp_path / "figures")
    names = sorted(str(path.relative_to(tmp_path / "figures")) for path in written)
    assert names == sorted([
        *(f"precision-fp32/{name}" for name in (
            "latency_vs_batch.png", "speedup_heatmap.png", "cache_cold_vs_warm.png",
            "operator_breakdown.png", "part_breakdown.png")),
        *(f"precision-emb-int8-dense-fp32/{name}" for name in (
            "latency_vs_batch.png", "speedup_heatmap.png", "operator_breakdown.png",
            "part_breakdown.png"))])
    with console.capture() as captured:
        summaries.print_summary(load_timings(store, [run_id]),
                                LatencyTargets({}, 100.0, "test"))
    text = captured.get()
    assert "rmc1 emb=int8,dense=fp32" in text
