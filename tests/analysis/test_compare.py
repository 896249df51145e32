"""Two constructed runs: one point really slower in B (significant), one the same (not),
one point in each run only; settings differences are found."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from recstack.analysis.compare import (COMPARISON_COLUMNS, compare_runs, method_differences,
                                       run_platforms, settings_differences)
from recstack.collect.timing import timing_stats
from recstack.errors import RecstackError
from recstack.records import TimingRecord
from recstack.store import ResultStore
from tests import fill


def record(store: ResultStore, run_id: str, model: str, batch: int, median_ms: float,
           seed: int, method_version: int = 1) -> None:
    # Skewed, noisy latencies like real ones: a log-normal around the median.
    latency = median_ms * 1e6 * np.random.default_rng(seed).lognormal(0.0, 0.05, 200)
    samples = pd.DataFrame({"iteration": range(200), "latency_ns": latency.astype(np.int64)})
    point = fill.point(config_key=f"{model}-{batch}", level="timing", model=model,
                       model_type="dlrm", row_scale=1.0, batch_size=batch, device="cpu",
                       threads=1, backend="eager", method_version=method_version)
    store.record_point(run_id, f"{run_id}-{model}-{batch}", point, TimingRecord(
        samples=samples, stats=timing_stats(list(samples.latency_ns), batch)))


@pytest.fixture
def two_runs(tmp_path: Path) -> tuple[ResultStore, str, str]:
    store = ResultStore(tmp_path / "r.duckdb")
    a = store.create_run("a", {"min_seconds": 1.0}, {}, "pa", "machine A")
    b = store.create_run("b", {"min_seconds": 0.5}, {}, "pb", "machine B")
    record(store, a, "rmc1", 1, 1.0, seed=1)
    record(store, b, "rmc1", 1, 1.3, seed=2)   # 30% slower in B: significant
    record(store, a, "rmc1", 16, 2.0, seed=3)
    record(store, b, "rmc1", 16, 2.0, seed=4)  # the same distribution: not significant
    record(store, a, "din", 1, 5.0, seed=5)    # only in A
    record(store, b, "ncf", 1, 0.2, seed=6)    # only in B
    return store, a, b


def test_slower_point_is_significant_and_same_point_is_not(
        two_runs: tuple[ResultStore, str, str]) -> None:
    store, a, b = two_runs
    table = compare_runs(store, a, b)
    assert list(table.columns) == COMPARISON_COLUMNS
    both = table[table.present == "both"].set_index("batch_size")
    assert list(both.model) == ["rmc1", "rmc1"]
    assert both.ratio[1] == pytest.approx(1.3, rel=0.03)
    assert bool(both.significant[1]) and both.change[1] == "slower"
    assert both.p_adjusted[1] < 1e-6
    assert not bool(both.significant[16]) and both.change[16] == "same"
    assert both.ratio[16] == pytest.approx(1.0, rel=0.03)
    # Holm never lowers a p-value
    assert (both.p_adjusted >= both.p_value).all()
    assert (both.samples_a == 200).all() and (both.samples_b == 200).all()


def test_points_in_one_run_only(two_runs: tuple[ResultStore, str, str]) -> None:
    store, a, b = two_runs
    table = compare_runs(store, a, b).set_index("model")
    assert table.present["din"] == "only A" and table.present["ncf"] == "only B"
    assert np.isnan(table.p_value["din"]) and not bool(table.significant["din"])
    assert table.change["ncf"] == "n/a"


def test_settings_and_platforms(two_runs: tuple[ResultStore, str, str]) -> None:
    store, a, b = two_runs
    assert settings_differences(store, a, b) == {"min_seconds": (1.0, 0.5)}
    assert settings_differences(store, a, a) == {}
    platforms = run_platforms(store, a, b)
    assert list(platforms.run) == ["A", "B"]
    assert list(platforms.description) == ["machine A", "machine B"]


def test_bad_runs_and_alpha(two_runs: tuple[ResultStore, str, str]) -> None:
    store, a, _ = two_runs
    with pytest.raises(RecstackError, match="run: 'nope' is not in"):
        compare_runs(store, a, "nope")
    with pytest.raises(RecstackError, match="--alpha: 1.5 is not allowed"):
        compare_runs(store, a, a, alpha=1.5)


def test_runs_of_different_method_versions_are_told_apart(tmp_path: Path) -> None:
    from recstack import api

    store = ResultStore(tmp_path / "r.duckdb")
    a = store.create_run("a", {}, {}, "p", "machine")
    b = store.create_run("b", {}, {}, "p", "machine")
    record(store, a, "rmc1", 1, 1.0, seed=1)
    record(store, b, "rmc1", 1, 1.0, seed=2, method_version=2)
    assert method_differences(store, a, b) == {"timing": ("1", "2")}
    assert method_differences(store, a, a) == {}
    warnings = api.compare(a, b, store.path).warnings
    assert any("different method versions (timing 1 vs 2)" in w for w in warnings)

