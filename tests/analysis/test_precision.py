"""The precision view on a constructed store of one run timing rmc1 in fp32 and in int8
tables, whose answers are worked out by hand below; and the precision reaching the loaders
(read as fp32 where a point was stored without it)."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest

from recstack.analysis.precision import (PRECISION_SUMMARY_COLUMNS, PRECISION_TABLE_COLUMNS,
                                         load_model_specs, precision_summary, precision_table)
from recstack.analysis.systems import load_timings, precision_labels, precisions_of
from recstack.analysis.views import software_frames
from recstack.footprint import footprint
from recstack.precision import FP32, Precision
from recstack.store import ResultStore
from tests import fill
from tests.conftest import small_spec

INT8 = Precision("int8", "fp32")


def put(store: ResultStore, run_id: str, batch: int, median_ms: float,
        precision: Precision | None, cache: str = "cold",
        deviation: tuple[float, float] | None = None, model: str = "rmc1") -> None:
    """A timing point of ``model`` (scaled down) with p95 = 1.2 x its median; ``precision``
    None: stored as before points had one (read as fp32). ``deviation``: (max, mean)."""
    spec = small_spec(model)
    label = "none" if precision is None else precision.label
    point = fill.point(
        config_key=f"{model}-{batch}-{label}-{cache}", model=model,
        model_type=spec.model_type, spec=spec.to_config(), row_scale=spec.row_scale,
        batch_size=batch, device="cpu", threads=1, backend="eager", cache_state=cache,
        embedding_precision=None if precision is None else precision.embedding,
        dense_precision=None if precision is None else precision.dense)
    built = None if deviation is None else fill.build(
        output_max_abs_deviation=deviation[0], output_mean_abs_deviation=deviation[1],
        deviation_samples=100)
    store.record_point(run_id, f"{model}-{batch}-{label}-{cache}", point, fill.timing(
        built=built, iterations=100, median_ms=median_ms, p5_ms=median_ms * 0.9,
        p95_ms=median_ms * 1.2, p99_ms=median_ms * 1.3, mean_ms=median_ms, cv=0.01,
        throughput_per_s=batch / (median_ms / 1e3), unstable=False))


def profile(store: ResultStore, run_id: str, batch: int, precision: Precision,
            operators: list[tuple[str, str, float]]) -> None:
    """An operator profile of rmc1 (cold) of (part, op, time_us) rows; 10% uncovered."""
    spec = small_spec("rmc1")
    frame = pd.DataFrame([{"part": part, "op": op, "calls": 1.0, "time_us": time}
                          for part, op, time in operators])
    total = float(frame.time_us.sum())
    store.record_point(run_id, f"op-{batch}-{precision.label}", fill.point(
        config_key=f"op-{batch}-{precision.label}", level="operators", model="rmc1",
        model_type="dlrm", spec=spec.to_config(), row_scale=spec.row_scale,
        batch_size=batch, device="cpu", threads=1, backend="eager", cache_state="cold",
        embedding_precision=precision.embedding, dense_precision=precision.dense),
        fill.profile(frame, iterations=10, time_basis="wall", wall_us=total / 0.9,
                     operator_us=total, uncovered_us=total / 9, profiled_median_us=total,
                     unprofiled_median_us=total, profiler_overhead=0.0, trace_path=None))


def make_precision_store(directory: Path) -> tuple[ResultStore, str]:
    """One run timing rmc1 in fp32 and in int8 tables (emb=int8,dense=fp32), cold.

    b1: fp32 2 ms (stored without a precision: read as fp32) and warm 0.5 ms (not the
    reference: the int8 point is cold), int8 1 ms (deviation max 0.002, mean 0.0005).
    b16: fp32 4 ms, int8 3.2 ms (deviation 0.003, 0.001); each profiled: fp32 embedding 60
    us and fc 40 us (a 60% embedding share of operator time), int8 its quantized lookup
    30 us, fc 40 us and a cast 10 us (37.5%). b64: int8 only, 8 ms (no fp32 twin)."""
    store = ResultStore(directory / "r.duckdb")
    run_id = store.create_run("recstack run", {}, {}, "pa", "machine A")
    put(store, run_id, 1, 2.0, None)
    put(store, run_id, 1, 0.5, FP32, cache="warm")
    put(store, run_id, 1, 1.0, INT8, deviation=(0.002, 0.0005))
    put(store, run_id, 16, 4.0, FP32)
    put(store, run_id, 16, 3.2, INT8, deviation=(0.003, 0.001))
    put(store, run_id, 64, 8.0, INT8)
    profile(store, run_id, 16, FP32, [("sparse", "aten::embedding_bag", 60.0),
                                      ("dense", "aten::linear", 40.0)])
    profile(store, run_id, 16, INT8, [
        ("sparse", "quantized::embedding_bag_byte_rowwise_offsets", 30.0),
        ("dense", "aten::linear", 40.0), ("sparse", "aten::to", 10.0)])
    return store, run_id


@pytest.fixture(scope="module")
def precision_store(tmp_path_factory: pytest.TempPathFactory) -> tuple[ResultStore, str]:
    return make_precision_store(tmp_path_factory.mktemp("precision"))


@pytest.fixture(scope="module")
def table(precision_store: tuple[ResultStore, str]) -> pd.DataFrame:
    store, run_id = precision_store
    _, _, shares = software_frames(store, [run_id])
    return precision_table(load_timings(store, [run_id]), shares,
                           load_model_specs(store, [run_id]))


def test_timings_carry_the_precision_read_as_fp32_where_not_stored(
        precision_store: tuple[ResultStore, str]) -> None:
    store, _ = precision_store
    timings = load_timings(store)
    assert set(zip(timings.embedding_precision, timings.dense_precision)) == {
        ("fp32", "fp32"), ("int8", "fp32")}
    assert precisions_of(timings) == ["fp32", "emb=int8,dense=fp32"]
    int8 = timings[timings.embedding_precision == "int8"].set_index("batch_size")
    assert int8.output_max_abs_deviation[1] == 0.002 and int8.deviation_samples[1] == 100
    assert math.isnan(int8.output_max_abs_deviation[64])
    # the rows of one configuration: fp32 first (sort_points), whatever the labels' order
    b16 = timings[timings.batch_size == 16]
    assert list(precision_labels(b16)) == ["fp32", "emb=int8,dense=fp32"]


def test_precision_table_sets_each_point_against_its_fp32_twin(table: pd.DataFrame) -> None:
    assert list(table.columns) == PRECISION_TABLE_COLUMNS
    assert table[["batch_size", "precision"]].values.tolist() == [
        [1, "fp32"], [1, "emb=int8,dense=fp32"], [16, "fp32"], [16, "emb=int8,dense=fp32"],
        [64, "emb=int8,dense=fp32"]]
    # b1: the cold fp32 point (2 ms) is the reference, never the warm 0.5 ms
    assert table.fp32_median_ms.tolist()[:4] == [2.0, 2.0, 4.0, 4.0]
    assert table.speedup.tolist()[:4] == pytest.approx([1.0, 2.0, 1.0, 1.25])
    assert math.isnan(table.speedup.iloc[4])  # b64: no fp32 point of that configuration
    assert table.throughput_per_s.iloc[3] == pytest.approx(16 / 0.0032)
    assert table.p95_ms.iloc[1] == pytest.approx(1.2)
    assert table.max_abs_deviation.tolist()[:4] == pytest.approx(
        [math.nan, 0.002, math.nan, 0.003], nan_ok=True)
    assert table.mean_abs_deviation.iloc[3] == 0.001
    # the quantized lookup counts as embedding: 30 of 80 us of operator time
    assert table.embedding_share.tolist() == pytest.approx(
        [math.nan, math.nan, 0.6, 0.375, math.nan], nan_ok=True)
    assert set(table.cache_state) == {"cold"} and set(table.platform_id) == {"pa"}


def test_precision_table_footprint_follows_the_precision(table: pd.DataFrame) -> None:
    spec = small_spec("rmc1")
    fp32, int8 = footprint(spec), footprint(spec, INT8)
    by_precision = table.drop_duplicates("precision").set_index("precision")
    assert by_precision.embedding_bytes["fp32"] == fp32.embedding_bytes
    assert by_precision.embedding_bytes["emb=int8,dense=fp32"] == int8.embedding_bytes
    assert by_precision.gathered_bytes_per_sample["emb=int8,dense=fp32"] == \
        int8.gathered_bytes_per_sample
    # rmc1's 32-wide rows: 32 + 8 bytes in int8 against 128 in fp32
    assert by_precision.embedding_bytes_ratio.tolist() == pytest.approx([1.0, 40 / 128])


def test_precision_summary_per_model_and_precision(table: pd.DataFrame) -> None:
    summary = precision_summary(table)
    assert list(summary.columns) == PRECISION_SUMMARY_COLUMNS
    assert summary[["precision", "points", "compared"]].values.tolist() == [
        ["fp32", 2, 2], ["emb=int8,dense=fp32", 3, 2]]
    int8 = summary.iloc[1]
    assert (int8.speedup_min, int8.speedup_median, int8.speedup_max) == pytest.approx(
        (1.25, 1.625, 2.0))
    assert int8.max_abs_deviation == 0.003
    assert int8.embedding_bytes_ratio == pytest.approx(40 / 128)
    assert precision_summary(table.iloc[:0]).empty


def test_without_shares_or_specs_the_columns_stay_and_read_nan(
        precision_store: tuple[ResultStore, str]) -> None:
    store, _ = precision_store
    bare = precision_table(load_timings(store))
    assert list(bare.columns) == PRECISION_TABLE_COLUMNS
    assert bare.embedding_share.isna().all() and bare.embedding_bytes.isna().all()
    assert bare.speedup.iloc[1] == pytest.approx(2.0)
    assert precision_table(load_timings(store).iloc[:0]).empty


def test_points_of_other_configurations_are_never_a_reference() -> None:
    from tests.analysis.test_systems import timing

    rows = [timing("a", "cpu", 1, 1, 2.0) | {"embedding_precision": "fp32",
                                             "dense_precision": "fp32"},
            timing("a", "cpu", 2, 1, 1.0) | {"embedding_precision": "fp32",
                                             "dense_precision": "fp32"},
            timing("a", "cpu", 2, 1, 0.5) | {"embedding_precision": "int8",
                                             "dense_precision": "int8"},
            timing("a", "cpu", 4, 1, 0.5) | {"embedding_precision": "bf16",
                                             "dense_precision": "bf16"}]
    table = precision_table(pd.DataFrame(rows)).set_index(["threads", "precision"])
    # two threads in int8 against two threads in fp32 (1 ms), not one thread's 2 ms
    assert table.speedup[(2, "emb=int8,dense=int8")] == pytest.approx(2.0)
    assert math.isnan(table.speedup[(4, "emb=bf16,dense=bf16")])


def test_memory_bound_joins_each_point_in_its_own_precision(
        precision_store: tuple[ResultStore, str], table: pd.DataFrame) -> None:
    from recstack.analysis.precision import load_memory_bound
    from recstack.analysis.roofline import MEMORY_BOUND_COLUMNS

    store, run_id = precision_store
    # no ceilings stored for machine A: nothing is bounded, and the columns read NaN
    assert load_memory_bound(store, [run_id]).empty
    assert table.memory_share.isna().all() and table.memory_bound.isna().all()
    assert math.isnan(precision_summary(table).memory_bound_fraction.iloc[0])
    # the roofline's verdicts (``roofline.memory_bound_points``): b16 memory-bound in fp32,
    # not in int8 (its rows a third as wide)
    point = {"run_id": run_id, "platform_id": "pa", "model": "rmc1", "batch_size": 16,
             "device": "cpu", "threads": 1, "backend": "eager", "cache_state": "cold"}
    bound = pd.DataFrame([
        point | {"embedding_precision": "fp32", "dense_precision": "fp32",
                 "memory_share": 0.8, "memory_bound": True},
        point | {"embedding_precision": "int8", "dense_precision": "fp32",
                 "memory_share": 0.3, "memory_bound": False}]).reindex(
        columns=MEMORY_BOUND_COLUMNS)
    _, _, shares = software_frames(store, [run_id])
    joined = precision_table(load_timings(store, [run_id]), shares, None, bound)
    b16 = joined[joined.batch_size == 16].set_index("precision")
    assert b16.memory_share.to_dict() == {"fp32": 0.8, "emb=int8,dense=fp32": 0.3}
    assert b16.memory_bound.tolist() == [True, False]
    assert joined[joined.batch_size != 16].memory_share.isna().all()
    summary = precision_summary(joined).set_index("precision")
    assert summary.memory_bound_fraction.to_dict() == {"fp32": 1.0,
                                                       "emb=int8,dense=fp32": 0.0}
