"""Two constructed runs: one point really slower in B (significant), one the same (not),
one point in each run only; settings differences are found."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from recstack.analysis.compare import (COMPARISON_COLUMNS, compare_runs, method_differences,
                                       mixed_sides, run_platforms, settings_differences)
from recstack.collect.timing import timing_stats
from recstack.errors import RecstackError
from recstack.records import TimingRecord
from recstack.store import ResultStore
from tests import fill


def record(store: ResultStore, run_id: str, model: str, batch: int, median_ms: float,
           seed: int, method_version: int = 1, platform: str | None = None,
           embedding: str | None = None) -> None:
    """A timing point; ``platform``: the machine that measured it (None: stored as before
    points had one, when the run's platform measured every point); ``embedding``: its
    tables' precision (None: stored before points had one, read as fp32)."""
    # Skewed, noisy latencies like real ones: a log-normal around the median.
    latency = median_ms * 1e6 * np.random.default_rng(seed).lognormal(0.0, 0.05, 200)
    samples = pd.DataFrame({"iteration": range(200), "latency_ns": latency.astype(np.int64)})
    point = fill.point(config_key=f"{model}-{batch}", level="timing", model=model,
                       model_type="dlrm", row_scale=1.0, batch_size=batch, device="cpu",
                       threads=1, backend="eager", method_version=method_version,
                       platform_id=platform, embedding_precision=embedding,
                       dense_precision=None if embedding is None else "fp32")
    key = (f"{run_id}-{model}-{batch}" + (f"-{platform}" if platform else "")
           + (f"-{embedding}" if embedding else ""))
    store.record_point(run_id, key, point, TimingRecord(
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



# ---- platforms: a run on a cluster measures on several ---------------------------------------


@pytest.fixture
def fleet_run(tmp_path: Path) -> tuple[ResultStore, str, str]:
    """Run F, started on pa, measured rmc1 at batch 1 and 16 on pa (batch 1 stored without a
    platform: the run's) and on pb (batch 1 30% slower there, batch 16 the same); run S
    measured both on pa alone."""
    store = ResultStore(tmp_path / "r.duckdb")
    fleet = store.create_run("fleet", {}, {}, "pa", "machine A")
    store.record_platform("pb", "machine B", {})
    single = store.create_run("single", {}, {}, "pa", "machine A")
    record(store, fleet, "rmc1", 1, 1.0, seed=1)
    record(store, fleet, "rmc1", 16, 2.0, seed=3, platform="pa")
    record(store, fleet, "rmc1", 1, 1.3, seed=2, platform="pb")
    record(store, fleet, "rmc1", 16, 2.0, seed=4, platform="pb")
    record(store, single, "rmc1", 1, 1.0, seed=5)
    record(store, single, "rmc1", 16, 2.0, seed=6)
    return store, fleet, single


def test_two_platforms_of_one_run(fleet_run: tuple[ResultStore, str, str]) -> None:
    store, fleet, _ = fleet_run
    table = compare_runs(store, fleet, fleet, platform_a="pa", platform_b="pb")
    assert list(table.columns) == COMPARISON_COLUMNS
    assert list(table.present) == ["both", "both"]
    assert list(table.platform_a) == ["pa", "pa"] and list(table.platform_b) == ["pb", "pb"]
    rows = table.set_index("batch_size")
    assert rows.ratio[1] == pytest.approx(1.3, rel=0.03) and rows.change[1] == "slower"
    assert rows.change[16] == "same"
    sides = run_platforms(store, fleet, fleet, "pa", "pb")
    assert sides[["run", "run_id", "platform_id", "description"]].values.tolist() == [
        ["A", fleet, "pa", "machine A"], ["B", fleet, "pb", "machine B"]]


def test_a_side_spanning_platforms_is_matched_platform_by_platform(
        fleet_run: tuple[ResultStore, str, str]) -> None:
    from recstack import api

    store, fleet, single = fleet_run
    assert mixed_sides(store, single, fleet) == {"B": ["pa", "pb"]}
    assert mixed_sides(store, single, fleet, platform_b="pb") == {}
    table = compare_runs(store, single, fleet)
    # S's points (pa) meet F's pa points; F's pb points are not set against machine A
    matched = table[table.present == "both"]
    assert list(zip(matched.batch_size, matched.platform_a, matched.platform_b)) == [
        (1, "pa", "pa"), (16, "pa", "pa")]
    alone = table[table.present == "only B"]
    assert list(zip(alone.batch_size, alone.platform_b)) == [(1, "pb"), (16, "pb")]
    assert alone.platform_a.isna().all()
    # one run against itself: every point meets itself alone, never the other machine's
    itself = compare_runs(store, fleet, fleet)
    assert len(itself) == 4 and (itself.platform_a == itself.platform_b).all()
    assert (itself.ratio == 1.0).all()
    warnings = api.compare(single, fleet, store.path).warnings
    assert any(f"run {fleet} (side B) spans 2 platforms (pa, pb): its points are matched "
               "platform by platform; name one with --platform-b" in w for w in warnings)
    named = api.compare(single, fleet, store.path, platform_b="pb")
    assert not any("spans" in w for w in named.warnings)
    assert list(named.points.ratio.round(1)) == [1.3, 1.0]
    assert list(named.platforms.platform_id) == ["pa", "pb"]


def test_one_platform_each_side_matches_by_configuration_alone(
        two_runs: tuple[ResultStore, str, str]) -> None:
    store, a, b = two_runs
    table = compare_runs(store, a, b)
    both = table[table.present == "both"]
    # machine A against machine B, as asked: each row names them
    assert set(both.platform_a) == {"pa"} and set(both.platform_b) == {"pb"}
    assert mixed_sides(store, a, b) == {}


def test_an_unknown_platform_is_one_line_naming_the_flag(
        fleet_run: tuple[ResultStore, str, str]) -> None:
    store, fleet, single = fleet_run
    with pytest.raises(RecstackError, match=f"--platform-a: 'nope' is not a platform of run "
                                            f"{fleet}; its points were measured on pa, pb$"):
        compare_runs(store, fleet, fleet, platform_a="nope", platform_b="pb")
    with pytest.raises(RecstackError, match="--platform-b: 'pb' is not a platform of run "
                                            f"{single}; its points were measured on pa$"):
        compare_runs(store, fleet, single, platform_b="pb")


# ---- precisions: an int8 point is never set against an fp32 one ----------------------------


def test_points_are_matched_precision_by_precision(tmp_path: Path) -> None:
    """A in fp32 (rmc1 b1 stored before points had a precision, b16 named fp32), B in int8
    tables at b1 and fp32 at b16. The points share their config_key here (written by hand),
    so only the precision keeps b1 apart."""
    from recstack import api
    from recstack.analysis.compare import precision_warnings

    store = ResultStore(tmp_path / "r.duckdb")
    a = store.create_run("a", {}, {}, "p", "machine")
    b = store.create_run("b", {}, {}, "p", "machine")
    record(store, a, "rmc1", 1, 2.0, seed=1)
    record(store, a, "rmc1", 16, 4.0, seed=2, embedding="fp32")
    record(store, b, "rmc1", 1, 1.0, seed=3, embedding="int8")
    record(store, b, "rmc1", 16, 4.0, seed=4)
    table = compare_runs(store, a, b)
    assert list(table.columns) == COMPARISON_COLUMNS
    assert table[["batch_size", "embedding_precision", "present"]].values.tolist() == [
        [16, "fp32", "both"], [1, "fp32", "only A"], [1, "int8", "only B"]]
    assert table.ratio.iloc[0] == pytest.approx(1.0, rel=0.03)
    assert set(table.dense_precision) == {"fp32"}
    warning = precision_warnings(store, a, b)
    assert warning == ["the runs were measured in different precisions (A: fp32; B: fp32, "
                       "emb=int8,dense=fp32): points are matched precision by precision, so "
                       "only the fp32 points are compared; `recstack report` compares "
                       "precisions within a run"]
    assert precision_warnings(store, a, a) == []
    assert warning[0] in api.compare(a, b, store.path).warnings
