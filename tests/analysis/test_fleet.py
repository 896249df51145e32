"""The fleet analyses on a constructed store of one run measured on two platforms, whose
answers are worked out by hand below; and the measuring platform reaching the loaders."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from recstack.analysis.findings import DOES_NOT_HOLD, FINDING_COLUMNS, HOLDS, Evidence
from recstack.analysis.fleet import (
    BEST_PLATFORM_COLUMNS,
    FLEET_FINDING_COLUMNS,
    PER_PLATFORM_COLUMNS,
    PLATFORM_SUMMARY_COLUMNS,
    best_per_platform,
    best_platform,
    findings_by_platform,
    findings_grid,
    findings_per_platform,
    load_point_platforms,
    per_platform_latency,
    platform_summary,
    platforms_of,
)
from recstack.analysis.systems import load_timings
from recstack.store import ResultStore
from tests import fill


def put(store: ResultStore, run_id: str, key: str, model: str, batch: int, median_ms: float,
        platform: str | None, threads: int = 1, cache: str = "cold",
        status: str = "ok") -> None:
    """A timing point with p95 = 1.2 x its median (every one well inside its model's p95
    target); ``platform`` None: stored as before points had one (its run's measured it)."""
    point = fill.point(config_key=f"{model}-{batch}-{threads}-{cache}", model=model,
                       model_type="dlrm", row_scale=1.0, batch_size=batch, device="cpu",
                       threads=threads, backend="eager", cache_state=cache,
                       platform_id=platform, status=status)
    record = None if status != "ok" else fill.timing(
        iterations=100, median_ms=median_ms, p5_ms=median_ms * 0.9, p95_ms=median_ms * 1.2,
        p99_ms=median_ms * 1.3, mean_ms=median_ms, cv=0.01,
        throughput_per_s=batch / (median_ms / 1e3), unstable=False)
    store.record_point(run_id, key, point, record)


def make_fleet_store(directory: Path) -> tuple[ResultStore, str]:
    """One run started on platform pa ("machine A") measuring on pa and pb ("machine B").

    pa: rmc1 b1 cold 2 ms (stored without a platform: the run's), b1 warm 0.5 ms (dropped
    where cold is preferred), b16 4 ms. pb: rmc1 b1 1 ms, b16 8 ms at 1 thread and 6 ms at
    4 threads, din b1 3 ms, and one failed point."""
    store = ResultStore(directory / "r.duckdb")
    run_id = store.create_run("recstack run", {}, {}, "pa", "machine A")
    store.record_platform("pb", "machine B", {"hostname": "b"})
    put(store, run_id, "a1", "rmc1", 1, 2.0, None)
    put(store, run_id, "a1w", "rmc1", 1, 0.5, "pa", cache="warm")
    put(store, run_id, "a16", "rmc1", 16, 4.0, "pa")
    put(store, run_id, "b1", "rmc1", 1, 1.0, "pb")
    put(store, run_id, "b16", "rmc1", 16, 8.0, "pb")
    put(store, run_id, "b16t4", "rmc1", 16, 6.0, "pb", threads=4)
    put(store, run_id, "bdin", "din", 1, 3.0, "pb")
    put(store, run_id, "bfail", "din", 16, 0.0, "pb", status="failed")
    return store, run_id


@pytest.fixture
def fleet_store(tmp_path: Path) -> tuple[ResultStore, str]:
    return make_fleet_store(tmp_path)


def test_timings_carry_the_platform_that_measured_each_point(
        fleet_store: tuple[ResultStore, str]) -> None:
    store, _ = fleet_store
    timings = load_timings(store)
    by_point = timings.set_index(["platform_id", "batch_size", "threads", "cache_state",
                                  "model"])
    # the point stored without a platform reads as its run's (pa)
    assert by_point.median_ms[("pa", 1, 1, "cold", "rmc1")] == 2.0
    assert by_point.platform[("pb", 16, 4, "cold", "rmc1")] == "machine B"
    assert sorted(timings.platform_id) == ["pa"] * 3 + ["pb"] * 4
    assert platforms_of(timings) == ["pa", "pb"]
    assert platforms_of(timings.iloc[::-1]) == ["pa", "pb"]  # whatever the rows' order
    assert platforms_of(pd.DataFrame({"model": ["x"]})) == []


def test_platform_summary_counts_each_machines_points(
        fleet_store: tuple[ResultStore, str]) -> None:
    store, run_id = fleet_store
    points = load_point_platforms(store, [run_id])
    assert len(points) == 8 and set(points.platform_id) == {"pa", "pb"}
    summary = platform_summary(points)
    assert list(summary.columns) == PLATFORM_SUMMARY_COLUMNS
    assert summary.values.tolist() == [["pa", "machine A", 1, 3, 3, 0],
                                       ["pb", "machine B", 1, 4, 4, 1]]


def test_per_platform_latency(fleet_store: tuple[ResultStore, str]) -> None:
    store, _ = fleet_store
    table = per_platform_latency(load_timings(store))
    assert list(table.columns) == PER_PLATFORM_COLUMNS
    assert len(table) == 7  # every point its own configuration and platform
    rows = table.set_index(["model", "batch_size", "threads", "cache_state", "platform_id"])
    pb16 = rows.loc[("rmc1", 16, 4, "cold", "pb")]
    assert pb16.median_ms == 6.0 and pb16.p95_ms == pytest.approx(7.2)
    assert pb16.throughput_per_s == pytest.approx(16 / 0.006)  # 2666.7 samples/s
    assert pb16.platform == "machine B" and pb16.points == 1
    # the zoo's order (rmc1 before din), then batch size
    assert list(table.model) == ["rmc1"] * 6 + ["din"]


def test_per_platform_latency_pools_runs_of_one_platform_by_their_median() -> None:
    from tests.analysis.test_systems import timing

    rows = [timing("a", "cpu", 1, 1, 1.0), timing("a", "cpu", 1, 1, 3.0),
            timing("a", "cpu", 1, 1, 10.0)]
    rows[1]["run_id"] = "r2"
    rows[2]["platform_id"] = "q"
    table = per_platform_latency(pd.DataFrame(rows)).set_index("platform_id")
    # two runs on p: the median of 1 and 3 ms; q apart
    assert table.points.to_dict() == {"p": 2, "q": 1}
    assert table.median_ms.to_dict() == {"p": 2.0, "q": 10.0}
    assert table.platform.isna().all()  # a frame without descriptions


def test_best_platform_ranks_what_two_platforms_measured(
        fleet_store: tuple[ResultStore, str]) -> None:
    store, _ = fleet_store
    timings = load_timings(store)
    lines = best_per_platform(timings)
    # per platform its fastest deployment; pa's warm 0.5 ms is not set against pb's cold
    assert lines[["platform_id", "batch_size", "deployment", "median_ms"]].values.tolist() == [
        ["pa", 1, "cpu t1 eager", 2.0], ["pb", 1, "cpu t1 eager", 1.0],
        ["pa", 16, "cpu t1 eager", 4.0], ["pb", 16, "cpu t4 eager", 6.0],
        ["pb", 1, "cpu t1 eager", 3.0]]
    ranked = best_platform(timings)
    assert list(ranked.columns) == BEST_PLATFORM_COLUMNS
    # din was measured on pb alone: not ranked
    assert ranked[["model", "batch_size", "platforms", "best_platform_id",
                   "runner_up_platform_id"]].values.tolist() == [["rmc1", 1, 2, "pb", "pa"],
                                                                 ["rmc1", 16, 2, "pa", "pb"]]
    assert ranked.best_median_ms.tolist() == [1.0, 4.0]
    assert ranked.runner_up_median_ms.tolist() == [2.0, 6.0]
    assert ranked.ratio.tolist() == pytest.approx([2.0, 1.5])
    assert ranked.runner_up_deployment.tolist() == ["cpu t1 eager", "cpu t4 eager"]
    assert ranked.best_platform.tolist() == ["machine B", "machine A"]


def test_best_platform_never_sets_warm_against_cold() -> None:
    from tests.analysis.test_systems import timing

    rows = [timing("a", "cpu", 1, 1, 1.0, cache_state="warm"),
            timing("a", "cpu", 1, 1, 2.0, cache_state="cold")]
    rows[1]["platform_id"] = "q"
    assert best_platform(pd.DataFrame(rows)).empty
    assert best_platform(pd.DataFrame(columns=list(rows[0]))).empty


def test_findings_checked_platform_by_platform(fleet_store: tuple[ResultStore, str]) -> None:
    store, run_id = fleet_store
    table = findings_per_platform(store, [run_id])
    assert list(table.columns) == FLEET_FINDING_COLUMNS
    spread = table[table.id == "deployment_spread"].set_index("platform_id")
    # pa: rmc1 b16 4000/s over b1 500/s = 8x; pb: rmc1 t4 b16 2667/s over b1 1000/s = 2.7x
    # (din's one deployment is no spread). Pooled, pb's 1000/s would not be pa's worst.
    assert spread.status.to_dict() == {"pa": HOLDS, "pb": DOES_NOT_HOLD}
    assert spread.measured.to_dict() == {"pa": "8.0x", "pb": "2.7x"}
    assert spread.platform.to_dict() == {"pa": "machine A", "pb": "machine B"}
    grid = findings_grid(table)
    assert list(grid.columns) == ["id", "level", "statement", "pa", "pb"]
    first = grid.iloc[0]
    assert (first.id, first.pa, first.pb) == ("deployment_spread", "holds (8.0x)",
                                              "does not hold (2.7x)")
    assert grid.set_index("id").pa["cpu_small_gpu_large"] == "not measured"


def test_findings_keep_hardware_points_to_the_platform_that_measured_them() -> None:
    from tests.analysis.test_systems import timing

    stalls = {"retiring": 0.2, "bad_speculation": 0.1}
    hardware = pd.DataFrame([
        {"run_id": "r", "point_key": "h1", "model": "rmc1", "batch_size": 1,
         "source": "perf", **stalls, "frontend_bound": 0.5, "backend_bound": 0.2},
        {"run_id": "r", "point_key": "h2", "model": "rmc1", "batch_size": 1,
         "source": "perf", **stalls, "frontend_bound": 0.1, "backend_bound": 0.6}])
    points = pd.DataFrame({"run_id": ["r", "r", "r"], "point_key": ["h1", "h2", "t"],
                           "level": ["hardware", "hardware", "timing"],
                           "status": ["ok", "ok", "ok"], "platform_id": ["p", "q", "p"],
                           "platform": ["P", "Q", "P"]})
    evidence = Evidence(timings=pd.DataFrame([timing("rmc1", "cpu", 1, 1, 1.0)]),
                        shares=pd.DataFrame(), hardware=hardware)
    table = findings_by_platform(evidence, points)
    frontend = table[table.id == "frontend_bound_small_batch"].set_index("platform_id")
    assert frontend.status.to_dict() == {"p": HOLDS, "q": DOES_NOT_HOLD}
    assert frontend.measured.to_dict() == {"p": "1/1 models (measured)",
                                           "q": "0/1 models (measured)"}
    assert set(table.columns[2:]) == set(FINDING_COLUMNS)
    empty = findings_by_platform(evidence, points.iloc[:0])
    assert empty.empty and list(empty.columns) == FLEET_FINDING_COLUMNS


def test_platforms_are_ranked_precision_by_precision() -> None:
    """rmc1 b1 on p in fp32 (2 ms) and in int8 tables (0.5 ms), on q in fp32 (1 ms): q is
    the faster machine in fp32; p's int8 point, measured on p alone, is ranked with nothing
    (and never beats q's fp32 one)."""
    from tests.analysis.test_systems import in_precision, timing

    rows = [in_precision(timing("rmc1", "cpu", 1, 1, 2.0), "fp32"),
            in_precision(timing("rmc1", "cpu", 1, 1, 0.5), "int8"),
            in_precision(timing("rmc1", "cpu", 1, 1, 1.0), "fp32") | {"platform_id": "q"}]
    timings = pd.DataFrame(rows)
    ranked = best_platform(timings)
    assert ranked[["embedding_precision", "best_platform_id", "ratio"]].values.tolist() == [
        ["fp32", "q", 2.0]]
    lines = best_per_platform(timings)
    assert lines[["platform_id", "embedding_precision", "median_ms"]].values.tolist() == [
        ["p", "fp32", 2.0], ["q", "fp32", 1.0], ["p", "int8", 0.5]]
    every = per_platform_latency(timings)
    assert list(every.columns) == PER_PLATFORM_COLUMNS and len(every) == 3
    # a frame built without the precision columns reads as fp32
    assert set(per_platform_latency(pd.DataFrame(rows[:1]).drop(
        columns=["embedding_precision", "dense_precision"])).embedding_precision) == {"fp32"}
