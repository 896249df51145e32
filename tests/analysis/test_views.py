"""The view frames the CLI and the report render, on constructed frames whose answers are
known."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest

from recstack.analysis.breakdown import POINT_COLUMNS, breakdown
from recstack.analysis.systems import LatencyTargets
from recstack.analysis.views import (SOFTWARE_SUMMARY_COLUMNS, SYSTEMS_SUMMARY_COLUMNS,
                                     best_efficiency, deployment_choice, hardware_notes,
                                     hardware_summary, software_summary, spread_extremes,
                                     systems_summary, timing_quality, unstable_points)
from tests.analysis.test_systems import two_models

TARGETS = LatencyTargets({"a": 5.0, "b": 1.0}, default_ms=25.0, source="test")


@pytest.fixture
def timings() -> pd.DataFrame:
    return two_models()


def test_systems_summary_per_model(timings: pd.DataFrame) -> None:
    summary = systems_summary(timings, TARGETS)
    assert list(summary.columns) == SYSTEMS_SUMMARY_COLUMNS
    a, b = (row for _, row in summary.iterrows())
    assert a.model == "a" and a.smallest_batch == 1
    assert a.smallest_batch_median_ms == pytest.approx(0.8)
    assert (a.peak_device, a.peak_batch_size) == ("cuda", 256)
    assert a.peak_throughput_per_s == pytest.approx(80_000)
    assert (a.best_device, a.best_batch_size, a.meets_target) == ("cuda", 256, True)
    # a: the GPU at 256 (80,000/s) over the GPU at 1 (500/s), all within the 5 ms target
    assert a.spread_ratio == pytest.approx(160) == a.spread_ratio_within_target
    # b: nothing meets 1 ms: the lowest p95 shown, and no spread within the target
    assert not b.meets_target and b.best_batch_size == 1
    assert b.spread_ratio == pytest.approx(512 / 200)
    assert math.isnan(b.spread_ratio_within_target)


def test_deployment_choice_and_its_headline(timings: pd.DataFrame) -> None:
    choice = deployment_choice(timings, TARGETS).set_index("model")
    assert choice.ratio_within_target.isna().tolist() == [False, True]
    extremes = spread_extremes(choice.reset_index())
    assert (extremes.model, extremes.within_model) == ("a", "a")
    assert extremes.ratio == pytest.approx(160) and extremes.best == "cuda t1 eager b256"
    nothing_meets = LatencyTargets({}, default_ms=0.1, source="test")
    extremes = spread_extremes(deployment_choice(timings, nothing_meets))
    assert extremes.within_model is None and math.isnan(extremes.within_ratio)
    assert spread_extremes(deployment_choice(timings.iloc[:0], TARGETS)) is None


def test_systems_summary_and_choice_per_model_and_precision(timings: pd.DataFrame) -> None:
    """Model a again in int8 tables, one CPU deployment at 0.1 ms: a row of its own, whose
    speed never enters the fp32 model's peak, best deployment or spread."""
    from tests.analysis.test_systems import in_precision, timing

    int8 = pd.DataFrame([in_precision(timing("a", "cpu", 2, 1, 0.1), "int8")])
    both = pd.concat([timings, int8], ignore_index=True)
    summary = systems_summary(both, TARGETS)
    rows = summary.set_index(["model", "embedding_precision", "dense_precision"])
    assert list(rows.index) == [("a", "fp32", "fp32"), ("a", "int8", "fp32"),
                                ("b", "fp32", "fp32")]
    assert rows.peak_throughput_per_s[("a", "fp32", "fp32")] == pytest.approx(80_000)
    assert rows.smallest_batch_median_ms[("a", "fp32", "fp32")] == pytest.approx(0.8)
    assert rows.spread_ratio[("a", "fp32", "fp32")] == pytest.approx(160)
    assert rows.smallest_batch_median_ms[("a", "int8", "fp32")] == pytest.approx(0.1)
    assert rows.spread_ratio[("a", "int8", "fp32")] == pytest.approx(1.0)
    choice = deployment_choice(both, TARGETS)
    assert choice[["model", "embedding_precision", "deployments"]].values.tolist() == [
        ["a", "fp32", 6], ["a", "int8", 1], ["b", "fp32", 2]]
    extremes = spread_extremes(choice)
    assert (extremes.model, extremes.precision, extremes.within_precision) == ("a", "fp32",
                                                                               "fp32")


def test_timing_quality_and_unstable_points(timings: pd.DataFrame) -> None:
    # One flagged, one not recorded (not flagged), the rest steady.
    timings["unstable"] = pd.Series([True, None, *[False] * 6], dtype=object)
    quality = timing_quality(timings).iloc[0]
    assert quality.points == 8 and quality.unstable == 1
    assert quality.spread_median == pytest.approx(0.2)  # p5 0.9x, p95 1.1x the median
    unstable = unstable_points(timings)
    assert len(unstable) == 1 and unstable.spread.iloc[0] == pytest.approx(0.2)
    assert timing_quality(timings.iloc[:0]).empty


def _point(key: str, model: str, batch: int) -> dict[str, object]:
    return dict.fromkeys(POINT_COLUMNS, 1) | {"run_id": "r", "point_key": key, "model": model,
                                               "device": "cpu", "batch_size": batch}


def test_software_summary_per_point() -> None:
    din, rmc1 = _point("k1", "din", 1), _point("k2", "rmc1", 64)
    operators = pd.DataFrame([
        din | {"part": "attention", "op": "aten::linear", "calls": 1, "time_us": 50.0},
        din | {"part": "over", "op": "aten::relu", "calls": 1, "time_us": 30.0},
        rmc1 | {"part": "sparse", "op": "aten::embedding_bag", "calls": 1, "time_us": 70.0},
        rmc1 | {"part": "dense", "op": "aten::linear", "calls": 1, "time_us": 20.0}])
    profiles = pd.DataFrame([
        din | {"uncovered_us": 20.0, "wall_us": 100.0, "operator_us": 80.0,
               "profiled_median_us": 150.0, "unprofiled_median_us": 100.0},
        rmc1 | {"uncovered_us": 10.0, "wall_us": 100.0, "operator_us": 90.0,
                "profiled_median_us": 110.0, "unprofiled_median_us": 100.0}])
    summary = software_summary(breakdown(operators, profiles), profiles)
    assert list(summary.columns) == SOFTWARE_SUMMARY_COLUMNS
    assert list(summary.model) == ["rmc1", "din"]  # the zoo's order
    rmc1_row, din_row = (row for _, row in summary.iterrows())
    assert (rmc1_row.top_class, rmc1_row.top_part) == ("embedding", "sparse")
    assert rmc1_row.top_class_share == pytest.approx(0.7)
    assert rmc1_row.overhead_share == pytest.approx(0.1)
    assert rmc1_row.profiler_overhead == pytest.approx(0.1)
    assert (din_row.top_class, din_row.top_part) == ("fc", "attention")
    assert din_row.profiler_overhead == pytest.approx(0.5)


def test_hardware_summary_labels_and_top_stall() -> None:
    hardware = pd.DataFrame([
        {"model": "rmc1", "batch_size": 1, "source": "simulated (valgrind, host)",
         "retiring": 0.2, "bad_speculation": 0.1, "frontend_bound": 0.4,
         "backend_bound": 0.3, "caveats": json.dumps(["b", "a"])},
        {"model": "rmc1", "batch_size": 64, "source": "measured (perf stat)",
         "retiring": None, "bad_speculation": None, "frontend_bound": None,
         "backend_bound": None, "caveats": None}])
    summary = hardware_summary(hardware)
    assert list(summary.kind) == ["simulated", "measured"]
    assert summary.top_stall.iloc[0] == "frontend_bound" and summary.top_stall.iloc[1] is None
    notes = hardware_notes(hardware)
    assert list(zip(notes.kind, notes.text)) == [
        ("source", "measured (perf stat)"), ("source", "simulated (valgrind, host)"),
        ("caveat", "a"), ("caveat", "b")]


def test_best_efficiency_at_large_batch() -> None:
    table = pd.DataFrame({"model": ["din", "rmc1", "rmc1", "rmc2"],
                          "batch_size": [1024, 1024, 4096, 64],
                          "efficiency": [0.1, 0.2, 0.3, 0.9]})
    best = best_efficiency(table, 1024)
    assert list(zip(best.model, best.efficiency)) == [("rmc1", 0.3), ("din", 0.1)]


def _cold_and_warm() -> pd.DataFrame:
    """rmc1 at batch 1 and 4 and rmc2 at batch 1 cold and warm; rmc2 at 64 cold only."""
    from tests.analysis.test_systems import timing

    rows = []
    for model, batch, cold_ms, warm_ms in (("rmc2", 1, 0.2, 0.1), ("rmc1", 4, 0.3, 0.2),
                                           ("rmc1", 1, 0.25, 0.1), ("rmc2", 64, 2.0, None)):
        rows.append(timing(model, "cpu", 1, batch, cold_ms) | {
            "working_set_bytes": (8 if model == "rmc1" else 2) * 2**20, "llc_bytes": 2**20})
        if warm_ms is not None:
            rows.append(timing(model, "cpu", 1, batch, warm_ms, cache_state="warm")
                        | {"working_set_bytes": 2**18, "llc_bytes": 2**20})
    return pd.DataFrame(rows)


def test_cold_and_warm_stay_apart_in_the_summary_and_meet_in_the_comparison() -> None:
    from recstack.analysis.views import CACHE_COMPARISON_COLUMNS, cache_comparison

    timings = _cold_and_warm()
    summary = systems_summary(timings, TARGETS).set_index("model")
    # the summary reads the cold points only: rmc1's batch-1 latency is the cold 0.25 ms
    assert summary.loc["rmc1", "smallest_batch_median_ms"] == pytest.approx(0.25)
    assert summary.loc["rmc2", "smallest_batch_median_ms"] == pytest.approx(0.2)
    choice = deployment_choice(timings, TARGETS).set_index("model")
    assert choice.loc["rmc1", "deployments"] == 2 and choice.loc["rmc2", "deployments"] == 2
    pairs = cache_comparison(timings)
    assert list(pairs.columns) == CACHE_COMPARISON_COLUMNS
    assert list(zip(pairs.model, pairs.batch_size)) == [("rmc1", 1), ("rmc1", 4), ("rmc2", 1)]
    first = pairs.iloc[0]
    assert (first.warm_ms, first.cold_ms) == pytest.approx((0.1, 0.25))
    assert first.cold_over_warm == pytest.approx(2.5)
    assert first.memory_share == pytest.approx(0.6)
    assert (first.working_set_mib, first.llc_mib) == pytest.approx((8.0, 1.0))
    # rmc2's cold set reached 2x the LLC only: short of the cold multiple (4x)
    assert list(pairs.reached) == [True, True, False]
    assert cache_comparison(timings[timings.cache_state == "warm"]).empty


def test_warm_only_timings_are_kept_as_they_are(timings: pd.DataFrame) -> None:
    from recstack.analysis.views import cache_comparison, cold_working_sets

    warm = timings.assign(cache_state="warm")
    assert systems_summary(warm, TARGETS).equals(systems_summary(timings, TARGETS))
    assert cache_comparison(warm).empty and cold_working_sets(warm).empty


def test_dominant_grid_one_row_per_model_batches_sorted() -> None:
    from recstack.analysis.views import dominant_grid

    points = [("dien", 64, "recurrent"), ("rmc1", 16, "embedding"), ("rmc1", 1, "fc"),
              ("dien", 1, "recurrent"), ("rmc1", 64, "embedding")]
    summary = pd.DataFrame([
        {"run_id": "r", "point_key": f"{model}{batch}", "model": model, "device": "cpu",
         "threads": 2, "backend": "eager", "cache_state": "cold", "batch_size": batch,
         "top_class": top, "top_class_share": 0.6, "top_part": "sparse",
         "top_part_share": 0.7} for model, batch, top in points])
    grid = dominant_grid(summary)
    assert list(grid.columns) == ["model", 1, 16, 64]
    assert list(grid.model) == ["rmc1", "dien"]  # the zoo's order
    assert grid.set_index("model").loc["rmc1", 1]["top_class"] == "fc"
    assert grid.set_index("model").loc["dien", 16] is None  # not measured
    # a second thread count of one model and batch: the rows say which
    more = pd.concat([summary, summary.iloc[[2]].assign(threads=1, point_key="x")])
    grid = dominant_grid(more)
    assert list(grid.columns[:2]) == ["model", "threads"] and len(grid) == 3


def test_latency_grid_marks_unstable_points() -> None:
    from recstack.analysis.views import latency_grid

    timings = _cold_and_warm()
    timings.loc[timings.batch_size == 64, "unstable"] = True
    grid = latency_grid(timings).set_index("model")
    assert list(grid.columns) == [1, 4, 64]
    assert grid.loc["rmc1", 1]["median_ms"] == pytest.approx(0.25)  # the cold point
    assert grid.loc["rmc2", 64]["unstable"] and not grid.loc["rmc2", 1]["unstable"]


def test_measurement_basis_counts_races_and_remeasured_points(timings: pd.DataFrame) -> None:
    from recstack.analysis.views import measurement_basis

    timings = timings.assign(
        backend_basis=["race s1", "race s1", "shipped file", "as given", None, None, None,
                       None], attempts=[1, 2, 1, 1, None, None, None, 3])
    row = measurement_basis(timings).iloc[0]
    assert (row.points, row.raced, row.shipped, row.as_given, row.unrecorded) == (8, 2, 1, 1, 4)
    assert (row.attempts_recorded, row.remeasured, row.unstable) == (5, 2, 0)
    assert measurement_basis(timings.iloc[:0]).empty
