"""Ceilings: settings, pure parsing and summaries, storing and reuse (quick mode, tiny sizes),
and the command's one-line errors. No timing is asserted."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from recstack.ceiling_shapes import parse_table_gather_shape
from recstack.collect.ceiling_kernels import (CeilingSettings, distinct_ids, measure_gathers,
                                              measure_gemm, measure_table_gathers, summarize)
from recstack.collect.ceilings import (CEILING_COLUMNS, covers, ensure_ceilings, gemm_shapes,
                                       llc_bytes, row_sizes, stored_row_sizes,
                                       table_gather_points, triad_working_set, working_sets)
from recstack.errors import RecstackError
from recstack.store import ResultStore


def test_summarize_keeps_samples_and_percentiles():
    ceiling = summarize("triad_dram", "12 B", "GB/s", [1.0, 2.0, 3.0, 4.0, 5.0])
    assert ceiling.value == 3.0 and ceiling.repeats == 5
    assert ceiling.p5 == pytest.approx(1.2) and ceiling.p95 == pytest.approx(4.8)
    assert json.loads(ceiling.to_row()["samples"]) == [1.0, 2.0, 3.0, 4.0, 5.0]


def test_llc_and_working_sets():
    platform = {"caches": [{"type": "Data", "size_bytes": 48 << 10},
                           {"type": "Instruction", "size_bytes": 64 << 20},
                           {"type": "Unified", "size_bytes": 32 << 20}]}
    assert llc_bytes(platform) == 32 << 20
    assert llc_bytes({"caches": []}) > 0
    dram, cached = working_sets(CeilingSettings(), 32 << 20, available=64 << 30)
    assert dram == 256 << 20 and cached == 8 << 20  # at least 256 MiB; a quarter of the LLC
    dram, _ = working_sets(CeilingSettings(), 480 << 20, available=3 << 30)
    assert dram == 1 << 30  # 4x the LLC would not fit: a third of what is available


def test_triad_shape_parsing_and_cover():
    import pandas as pd

    assert triad_working_set("2013265920 B") == 2013265920
    assert triad_working_set("row 128 B") is None
    stored = pd.DataFrame({"kind": ["triad_dram", "gather_table", "gemm_large_bf16",
                                    "gemm_large_int8"],
                           "shape": ["1000 B", "row 4 B, table 64 B, ids 16", "8x8x8",
                                     "8x8x8"]})
    assert covers(stored, 2000) and not covers(stored, 4000)
    assert not covers(stored.assign(kind="dispatch"), 10)
    # Stored before gathers were measured per table size, or per run length, or before GEMMs
    # were measured per dense precision: measured again.
    assert not covers(stored.drop(index=1), 2000)
    assert not covers(stored.assign(shape=["1000 B", "row 4 B, table 64 B", "8x8x8",
                                           "8x8x8"]), 2000)
    assert not covers(stored.head(2), 2000)
    assert parse_table_gather_shape("row 128 B, table 4096 B, ids 20") == (128, 4096, 20)
    assert parse_table_gather_shape("row 128 B, table 4096 B") == (128, 4096, None)
    assert parse_table_gather_shape("row 128 B") is None


def test_shapes_come_from_the_models():
    settings = CeilingSettings.quick()
    shapes = gemm_shapes(settings)  # rmc1 at batch 1 and 16
    assert (1, 128, 64) in shapes and (16, 288, 256) in shapes
    assert all(m <= settings.gemm_max_m for m, _, _ in shapes)
    assert row_sizes(CeilingSettings()) == [4, 128, 256]  # wide part, dim 32, dim 64
    settings = CeilingSettings()
    points = table_gather_points(settings)
    sizes = {(row, table) for row, table, _ in points}
    assert (256, 32 * (1 << 20) // 8) not in sizes        # not a model's table, not a rung
    assert (128, 4 << 30) in sizes and (4, 16 << 20) in sizes  # the ladder, every row size
    # RMC2's tables (500k rows of 256 B) at the run each batch size gives them (120 ids per
    # sample), clamped to the shortest run measured.
    rmc2 = sorted(run for row, table, run in points if (row, table) == (256, 500_000 * 256))
    assert rmc2 == [settings.min_run_ids, 7680, 30_720, 122_880, 491_520]
    assert (128, 4 << 30, settings.table_draws) in points


def test_precision_shapes_come_from_the_models():
    quick = CeilingSettings.quick()
    # rmc1's layers all run in each dense precision; DIEN's GRU stays fp32 under int8.
    assert gemm_shapes(quick, "bf16") == gemm_shapes(quick, "int8") == gemm_shapes(quick)
    dien = CeilingSettings(models=("dien",), batch_sizes=(1,))
    assert set(gemm_shapes(dien, "int8")) < set(gemm_shapes(dien))
    # 32 and 64 values stored row-wise: 32 + 8 and 64 + 8 bytes, 16 + 4 and 32 + 4; the wide
    # part's width-1 rows stay fp32.
    assert stored_row_sizes(CeilingSettings(), "int8") == [40, 72]
    assert stored_row_sizes(CeilingSettings(), "int4") == [20, 36]


def test_gemms_and_gathers_in_each_precision():
    settings = CeilingSettings.quick()
    for dtype in ("bf16", "int8"):
        ceiling = measure_gemm(4, 16, 8, settings, f"gemm_{dtype}", dtype=dtype)
        assert ceiling.kind == f"gemm_{dtype}" and ceiling.shape == "4x16x8"
        assert ceiling.value > 0
    rows = measure_gathers(1 << 16, [40], settings, "gather_cached_int8", precision="int8")
    assert [(c.kind, c.shape) for c in rows] == [("gather_cached_int8", "row 40 B")]
    rows = measure_gathers(1 << 16, [20], settings, "gather_cached_int4", precision="int4")
    assert rows[0].shape == "row 20 B" and rows[0].value > 0


def test_table_gathers_in_each_format_share_the_tables_rows():
    settings = CeilingSettings.quick()
    ceilings = measure_table_gathers(4 << 20, [(128, 1 << 20, 1000), (4, 1 << 20, 1000)],
                                     llc=1 << 20, settings=settings, formats=("int8", "int4"))
    # 8192 rows of 32 values: as many rows of 40 and of 20 bytes; 4 B rows stay fp32.
    assert [(c.kind, c.shape) for c in ceilings] == [
        ("gather_table", "row 128 B, table 1048576 B, ids 1000"),
        ("gather_table_int8", "row 40 B, table 327680 B, ids 1000"),
        ("gather_table_int4", "row 20 B, table 163840 B, ids 1000"),
        ("gather_table", "row 4 B, table 1048576 B, ids 1000")]
    assert all(c.value > 0 for c in ceilings)


def test_table_gathers_cut_the_buffer_into_tables():
    settings = CeilingSettings.quick()
    ceilings = measure_table_gathers(
        8 << 20, [(128, 1 << 20, 1000), (128, 1 << 20, 1000), (128, 1 << 20, 100_000),
                  (4, 64 << 20, 1000)], llc=1 << 20, settings=settings)
    # Duplicates measured once; runs in whole bags of 20, at most the table's 8192 rows; a
    # table larger than the buffer measured at the buffer's size.
    assert [c.shape for c in ceilings] == ["row 128 B, table 1048576 B, ids 1000",
                                          "row 128 B, table 1048576 B, ids 8180",
                                          "row 4 B, table 8388608 B, ids 1000"]
    assert all(c.kind == "gather_table" and c.value > 0 and c.repeats == settings.repeats
               for c in ceilings)


def test_distinct_ids_never_repeat():
    generator = np.random.default_rng(3)
    for rows, count in ((100, 100), (100, 30), (1 << 20, 5000)):
        ids = distinct_ids(generator, rows, count)
        assert len(ids) == count and len(np.unique(ids)) == count
        assert ids.min() >= 0 and ids.max() < rows
    # Random order, not sorted: a sorted run would gather in address order.
    assert not np.all(np.diff(distinct_ids(generator, 1 << 20, 5000)) > 0)


def test_bad_settings_name_the_field():
    with pytest.raises(RecstackError, match="repeats"):
        CeilingSettings(repeats=0)
    with pytest.raises(RecstackError, match="dram_bytes"):
        CeilingSettings(dram_bytes=10)


def test_measure_store_and_reuse(tmp_path):
    store = ResultStore(tmp_path / "r.duckdb")
    assert store.load_ceilings().empty  # no file yet: empty, not an error
    quick = CeilingSettings.quick()
    frame, measured = ensure_ceilings(store, 1, settings=quick)
    assert measured
    assert list(frame.columns) == [*CEILING_COLUMNS, "set_id"]
    kinds = set(frame.kind)
    assert {"cache", "dispatch", "triad_dram", "triad_cached", "gather_dram",
            "gather_cached", "gather_table", "gemm", "gemm_large"} <= kinds
    assert {f"{kind}_{dtype}" for kind in ("gemm", "gemm_large") for dtype in ("bf16", "int8")
            } <= kinds
    assert {f"{kind}_{table_format}" for kind in ("gather_dram", "gather_cached",
                                                  "gather_table")
            for table_format in ("int8", "int4")} <= kinds
    measured_rows = frame[frame.kind != "cache"]
    assert (measured_rows.value > 0).all() and (measured_rows.repeats == quick.repeats).all()
    assert all(len(json.loads(s)) == quick.repeats for s in measured_rows.samples)
    again, measured = ensure_ceilings(store, 1, settings=quick)
    assert not measured and len(again) == len(frame)
    # A full measurement is not satisfied by a quick one (its DRAM working set is tiny).
    assert not covers(again, working_sets(CeilingSettings(), 32 << 20, 64 << 30)[0])
    refreshed, measured = ensure_ceilings(store, 1, refresh=True, settings=quick)
    assert measured and len(refreshed) == len(frame)  # the newest set, not both
    assert refreshed.set_id.nunique() == 1 and set(refreshed.set_id) != set(frame.set_id)
    assert store.load_ceilings(every_set=True).set_id.nunique() == 2  # the older one kept
    assert store.load_ceilings(threads=2).empty


def _recstack(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "recstack", *args], capture_output=True,
                          text=True, timeout=120)


@pytest.mark.parametrize("arguments, message", [
    (["--threads", "0"], "error: --threads: '0' is not allowed; expected one integer from 1 "
                         "to "),
    (["--threads", "100000"], "error: --threads: '100000' is not allowed; expected one "
                              "integer from 1 to"),
    (["--threads", "many"], "error: --threads: 'many' is not allowed"),
])
def test_cli_rejects_bad_options(arguments, message, tmp_path):
    result = _recstack("ceilings", *arguments, "--store", str(tmp_path / "r.duckdb"))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0], result.stderr


def test_cli_quick_json(tmp_path):
    result = _recstack("ceilings", "--quick", "--threads", "1", "--json", "--store",
                       str(tmp_path / "r.duckdb"))
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["measured"] and data["threads"] == 1
    assert any(row["kind"] == "gemm_large" for row in data["ceilings"])


def test_gather_table_is_as_large_as_a_models_tables_unless_fixed() -> None:
    from recstack.collect.ceiling_kernels import CeilingSettings
    from recstack.collect.ceilings import MODEL_TABLE_BYTES, gather_working_set

    default = CeilingSettings()
    assert gather_working_set(default, 256 << 20, 24 << 30) == MODEL_TABLE_BYTES
    assert gather_working_set(default, 256 << 20, 3 << 30) == 1 << 30  # a third of memory
    assert gather_working_set(default, 256 << 20, 300 << 20) == 256 << 20
    quick = CeilingSettings.quick()
    assert gather_working_set(quick, quick.dram_bytes, 24 << 30) == quick.dram_bytes


def test_cli_summarizes_table_sizes_unless_asked(tmp_path):
    store = str(tmp_path / "r.duckdb")
    summary = _recstack("ceilings", "--quick", "--threads", "1", "--store", store)
    assert summary.returncode == 0, summary.stderr
    assert "gather by table size" in summary.stdout and "--all-tables" in summary.stdout
    assert "gather_table" not in summary.stdout
    listed = _recstack("ceilings", "--quick", "--threads", "1", "--store", store, "--all-tables")
    assert listed.returncode == 0, listed.stderr
    assert "reused" in listed.stdout and "gather_table" in listed.stdout
