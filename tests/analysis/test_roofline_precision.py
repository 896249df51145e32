"""The roofline in a point's precision: bytes per stage by hand for quantized tables and bf16
or int8 dense layers, ceilings looked up per precision (fp32's standing in, labelled, where a
set has none), and stored points of two precisions set against the same ceilings."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timezone
from types import SimpleNamespace

import duckdb
import pandas as pd
import pytest

from recstack.analysis.roofline import (MEMORY_BOUND_COLUMNS, Ceilings, ceiling_basis,
                                        memory_bound_points, point_bound, roofline_table)
from recstack.analysis.roofline import point_precision
from recstack.batch_work import Gemm, linear_gemm_shapes, stage_work, table_gathers
from recstack.footprint import footprint
from recstack.points import Point
from recstack.precision import DENSE_PRECISIONS, EMBEDDING_PRECISIONS, FP32, Precision
from recstack.records import Build, TimingRecord
from recstack.specs import ZOO_NAMES, spec_from_config, zoo_spec
from recstack.store import ResultStore
from tests import fill



def tiny(dim: int) -> object:
    """Two tables of 10 rows of ``dim`` values; 2 ids per bag; bottom MLP 4 -> ``dim``, top
    ``3 dim`` -> 2 -> 1."""
    return spec_from_config({
        "model_name": f"tiny{dim}", "model_type": "dlrm", "arch_mlp_bot": f"4-{dim}",
        "arch_mlp_top": "2-1", "arch_embedding_size": "10-10",
        "arch_sparse_feature_size": dim, "num_indices_per_lookup": 2,
        "num_indices_per_lookup_fixed": True, "arch_interaction_op": "cat"})


TINY8 = tiny(8)
INT8, INT4 = Precision(embedding="int8"), Precision(embedding="int4")
BF16, DENSE_INT8 = Precision(dense="bf16"), Precision(dense="int8")


def test_quantized_tables_gather_their_stored_rows_by_hand():
    # Batch 2: 2 samples x 2 tables x 2 ids = 8 rows; fp32 rows 32 B, int8 8 + 8 = 16 B
    # (values, float32 scale and bias), int4 8 / 2 + 4 = 8 B (float16 scale and bias).
    for precision, row in ((FP32, 32), (INT8, 16), (INT4, 8)):
        embedding = stage_work(TINY8, 2, precision)[0]
        assert embedding.gathered == ((row, 8.0),)
        assert embedding.gathered_bytes == 8 * row
        # Pooling FLOPs and the pooled fp32 output (2 x 2 x 8 floats) do not change.
        assert embedding.flops == 64 and embedding.activation_bytes == 128
    gathers = table_gathers(TINY8, 2, INT4)
    assert [(g.row_bytes, g.table_bytes, g.draws, g.precision) for g in gathers] == \
        [(8, 80, 4.0, "int4"), (8, 80, 4.0, "int4")]
    # The dense stages are the fp32 ones.
    assert stage_work(TINY8, 2, INT8)[1:] == stage_work(TINY8, 2)[1:]


def test_narrow_tables_stay_fp32():
    # Width 3: an int8 row (11 B) still saves a byte; int4 takes even widths only.
    assert table_gathers(tiny(3), 2, INT4)[0].precision == "fp32"
    assert table_gathers(tiny(3), 2, INT8)[0].row_bytes == 11
    wide = zoo_spec("wnd")  # the wide part's width-1 rows would grow: they stay fp32
    parts = {g.part: (g.row_bytes, g.precision) for g in table_gathers(wide, 1, INT8)}
    assert parts == {"deep": (wide.embedding_dim + 8, "int8"), "wide": (4, "fp32")}


def test_dense_stages_in_bf16_and_int8_by_hand():
    bf16 = {s.stage: s for s in stage_work(TINY8, 2, BF16)}
    bottom = bf16["bottom_mlp"]  # (2, 4) x (4, 8): 128 FLOPs
    assert bottom.gemms == (Gemm(2, 4, 8, dtype="bf16"),) and bottom.flops == 128
    assert bottom.weight_bytes == (32 + 8) * 2           # weight and bias in bfloat16
    assert bottom.activation_bytes == (2 * 4 + 2 * 8) * 2
    assert bf16["embedding"].activation_bytes == 2 * 2 * 8 * 2  # pooled rows, cast
    assert bf16["interaction"].activation_bytes == 2 * 2 * 24 * 2
    top = bf16["top_mlp"]  # (2, 24) x (24, 2), (2, 2) x (2, 1)
    assert top.flops == 200 and top.weight_bytes == (48 + 2 + 2 + 1) * 2
    assert top.activation_bytes == ((48 + 4) + (4 + 2)) * 2
    int8 = {s.stage: s for s in stage_work(TINY8, 2, DENSE_INT8)}
    # int8 weights, a float32 bias and a float32 scale per output channel; float32 in and out.
    assert int8["bottom_mlp"].weight_bytes == 32 + 2 * 8 * 4
    assert int8["bottom_mlp"].activation_bytes == (2 * 4 + 2 * 8) * 4
    assert int8["top_mlp"].weight_bytes == (48 + 2 * 2 * 4) + (2 + 2 * 1 * 4)
    assert int8["embedding"].activation_bytes == 2 * 2 * 8 * 4


@pytest.mark.parametrize("name", ZOO_NAMES)
def test_stage_bytes_add_up_to_the_footprint_in_every_precision(name):
    spec = zoo_spec(name)
    flops = sum(stage.flops for stage in stage_work(spec, 3))
    for embedding in EMBEDDING_PRECISIONS:
        for dense in DENSE_PRECISIONS:
            precision = Precision(embedding, dense)
            size = footprint(spec, precision)
            stages = stage_work(spec, 3, precision)
            assert sum(s.weight_bytes for s in stages) == size.dense_bytes
            assert sum(s.gathered_bytes for s in stages) == pytest.approx(
                3 * size.gathered_bytes_per_sample, rel=1e-12)
            assert sum(s.flops for s in stages) == flops


def test_dien_keeps_its_gru_in_fp32_under_int8():
    dien = zoo_spec("dien")
    recurrence = next(s for s in stage_work(dien, 2, DENSE_INT8) if s.stage == "recurrence")
    assert [g.dtype for g in recurrence.gemms] == ["fp32", "fp32", "int8", "int8"]
    hidden = int(dien.gru_hidden_size)
    int8 = linear_gemm_shapes([dien], [1], "int8")
    assert (1, dien.embedding_dim, 3 * hidden) not in int8   # the extractor's input product
    assert (1, hidden, 3 * hidden) in int8                   # AUGRU's hidden product
    assert set(int8) < set(linear_gemm_shapes([dien], [1]))


# ---- ceilings per precision -------------------------------------------------------------------


def ceilings_frame(extra: list[tuple[str, str, float, str]] = (), platform_id: str = "p1"
                   ) -> pd.DataFrame:
    """Every read reads from the cache (LLC 1e9); gathers of 32 B fp32 rows at 0.05 GB/s;
    the two MLPs' products at 0.1 GFLOP/s."""
    rows = [("cache", "llc", 1e9, "bytes"), ("dispatch", "add 1 float", 2.0, "us"),
            ("triad_dram", "1000 B", 10.0, "GB/s"), ("triad_cached", "100 B", 100.0, "GB/s"),
            ("gather_dram", "row 32 B", 0.05, "GB/s"),
            ("gather_cached", "row 32 B", 0.05, "GB/s"),
            ("gemm_large", "64x64x64", 100.0, "GFLOP/s"), ("gemm", "2x4x8", 0.1, "GFLOP/s"),
            ("gemm", "2x24x2", 0.1, "GFLOP/s"), ("gemm", "2x2x1", 0.1, "GFLOP/s"), *extra]
    frame = pd.DataFrame(rows, columns=["kind", "shape", "value", "unit"])
    return frame.assign(platform_id=platform_id, threads=1, p5=frame.value, p95=frame.value,
                        repeats=3, samples="[]", measured_at=datetime.now(timezone.utc),
                        recstack_version="t", torch_version="t")


QUANTIZED_GATHERS = [("gather_dram_int4", "row 8 B", 0.05, "GB/s"),
                     ("gather_cached_int4", "row 8 B", 0.05, "GB/s"),
                     ("gather_dram_int8", "row 16 B", 0.04, "GB/s"),
                     ("gather_cached_int8", "row 16 B", 0.04, "GB/s"),
                     ("gather_table_int8", "row 16 B, table 160 B, ids 4", 0.08, "GB/s")]
BF16_GEMMS = [("gemm_large_bf16", "64x64x64", 200.0, "GFLOP/s"),
              ("gemm_bf16", "2x4x8", 0.2, "GFLOP/s")]


def test_lookups_per_precision_and_the_fp32_stand_in():
    ceilings = Ceilings(ceilings_frame([*QUANTIZED_GATHERS, *BF16_GEMMS]))
    assert ceilings.gemm_gflops(Gemm(2, 4, 8, dtype="bf16")) == 0.2
    assert ceilings.gemm_measured(Gemm(2, 4, 8, dtype="bf16"))
    assert ceilings.gemm_gflops(Gemm(2, 24, 2, dtype="bf16")) == 200.0  # its large GEMM
    assert ceilings.gemm_gflops(Gemm(2, 24, 2)) == 0.1
    # No int8 GEMM stored: fp32's ceilings stand in.
    assert ceilings.gemm_precision("int8") == "fp32"
    assert ceilings.gemm_gflops(Gemm(2, 24, 2, dtype="int8")) == 0.1
    assert ceilings.fastest_gather_gbps(16, "int8") == 0.08
    assert ceilings.table_gather_gbps(16, 160, 4, "int8") == 0.08
    assert ceilings.gather_gbps(8, False, "int4") == 0.05
    assert ceilings.table_gather_gbps(8, 80, 4, "int4") == 0.05  # no table sizes: DRAM
    assert ceilings.gather_precision("bf16") == "fp32"  # half tables: never measured
    assert ceilings.gather_gbps(16, True, "bf16") == 0.05


def test_the_basis_names_each_precision_and_its_stand_in():
    bare = Ceilings(ceilings_frame())
    assert ceiling_basis(TINY8, 2, bare) == ("fp32", False)
    assert ceiling_basis(TINY8, 2, bare, Precision("int8", "bf16")) == (
        "gemm bf16: fp32 ceilings (none stored for bf16); "
        "gather int8: fp32 ceilings (none stored for int8)", True)
    full = Ceilings(ceilings_frame([*QUANTIZED_GATHERS, *BF16_GEMMS]))
    assert ceiling_basis(TINY8, 2, full, Precision("int8", "bf16")) == (
        "gemm bf16: bf16 ceilings; gather int8: int8 ceilings", False)


def test_precision_moves_a_point_across_the_memory_bound_line():
    ceilings = Ceilings(ceilings_frame(QUANTIZED_GATHERS))
    # Compute: the bottom product 128 FLOPs and the top ones 192 + 8, at 0.1 GFLOP/s (1280 +
    # 1920 + 80 ns); the pooling's 64 FLOPs at 100. Memory: the 8 gathered rows at 0.05 GB/s
    # (fp32 256 B: 5120 ns; int4 64 B: 1280 ns), the pooled output (128 B) and the
    # concatenation (384 B) at 100 GB/s.
    compute_ns = 1280 + 1920 + 80
    fp32 = point_bound(TINY8, 2, ceilings)
    int4 = point_bound(TINY8, 2, ceilings, precision=INT4)
    assert fp32["bound_ms"] == pytest.approx((5120 + 1.28 + compute_ns + 3.84) * 1e-6)
    assert fp32["memory_share"] == pytest.approx((5121.28 + 3.84) / (5121.28 + compute_ns
                                                                    + 3.84))
    assert fp32["memory_bound"] and not int4["memory_bound"]
    assert int4["memory_share"] == pytest.approx((1281.28 + 3.84) / (1281.28 + compute_ns
                                                                    + 3.84))
    assert fp32["bytes"] - int4["bytes"] == 8 * (32 - 8)
    assert int4["flops"] == fp32["flops"]
    assert int4["operational_intensity"] > fp32["operational_intensity"]
    assert int4["ceiling_basis"] == "gather int4: int4 ceilings"


# ---- stored points ----------------------------------------------------------------------------


def _record_timing(store: ResultStore, run_id: str, precision: Precision,
                   median_ms: float = 0.01) -> None:
    from recstack.sweep import point_row

    build = Build(build_seconds=0.5, peak_memory_growth_bytes=1000, input_bytes_per_batch=None,
                  distinct_batches=None, threads_used=None, device_name=None,
                  warmup_iterations=None)
    record = TimingRecord(pd.DataFrame({"iteration": [], "latency_ns": []}),
                          fill.stats(iterations=10, median_ms=median_ms, p5_ms=median_ms,
                                     p95_ms=median_ms), build)
    point = Point(spec=TINY8, batch_size=2, threads=1, level="timing", precision=precision)
    row = point_row(point, "ok", datetime.now(timezone.utc))
    store.record_point(run_id, point.key(), dataclasses.replace(row, platform_id=None), record)


def _store_with_twins(tmp_path, ceilings: pd.DataFrame, twin: Precision
                      ) -> tuple[ResultStore, str]:
    store = ResultStore(tmp_path / "r.duckdb")
    run_id = store.create_run("test", {}, {}, "p1", "test platform")
    _record_timing(store, run_id, FP32)
    _record_timing(store, run_id, twin)
    store.write_ceilings(ceilings, {}, "test platform")
    return store, run_id


def test_an_int8_table_point_moves_fewer_bytes_than_its_fp32_twin(tmp_path):
    store, run_id = _store_with_twins(tmp_path, ceilings_frame(QUANTIZED_GATHERS), INT8)
    table = roofline_table(store, run_id).set_index("embedding_precision")
    fp32, int8 = table.loc["fp32"], table.loc["int8"]
    assert fp32.dense_precision == int8.dense_precision == "fp32"
    assert fp32.bytes - int8.bytes == 8 * (32 - 16)        # 8 rows, 16 B fewer each
    assert fp32.flops == int8.flops
    assert int8.embedding_bytes == footprint(TINY8, INT8).embedding_bytes == 20 * 16
    # Its rows at the int8 ceiling (0.04 GB/s cached; 0.08 from 160 B tables: the fastest).
    assert int8.bound_ms == pytest.approx((128 / 0.08 + 1.28 + 1280 + 1920 + 80 + 3.84)
                                          * 1e-6)
    assert int8.ceiling_basis == "gather int8: int8 ceilings" and not int8.ceiling_fallback
    assert fp32.ceiling_basis == "fp32" and not fp32.ceiling_fallback
    points = memory_bound_points(table.reset_index())
    assert list(points.columns) == MEMORY_BOUND_COLUMNS and len(points) == 2
    assert dict(zip(points.embedding_precision, points.memory_bound)) == {"fp32": True,
                                                                         "int8": False}


def test_a_precision_without_stored_ceilings_is_bounded_at_fp32s_and_says_so(tmp_path):
    store, run_id = _store_with_twins(tmp_path, ceilings_frame(), BF16)
    table = roofline_table(store, run_id).set_index("dense_precision")
    bf16, fp32 = table.loc["bf16"], table.loc["fp32"]
    assert bf16.ceiling_fallback
    assert bf16.ceiling_basis == "gemm bf16: fp32 ceilings (none stored for bf16)"
    # The same products at the same (fp32) rates, fewer bytes: a smaller, non-zero bound.
    assert 0 < bf16.bound_ms < fp32.bound_ms
    assert bf16.compute_ms == pytest.approx(fp32.compute_ms)
    assert bf16.bytes < fp32.bytes


def test_points_stored_before_precision_read_as_fp32(tmp_path):
    store, run_id = _store_with_twins(tmp_path, ceilings_frame(), INT8)
    with duckdb.connect(str(store.path)) as db:
        db.execute("UPDATE points SET embedding_precision = NULL, dense_precision = NULL "
                   "WHERE embedding_precision = 'fp32'")
    table = roofline_table(store, run_id)
    assert sorted(table.embedding_precision) == ["fp32", "int8"]
    assert set(table.dense_precision) == {"fp32"}
    assert point_precision(SimpleNamespace()) == FP32
