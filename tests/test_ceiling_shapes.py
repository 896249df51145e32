"""The stored shape of a table-gather ceiling and the kind of a ceiling measured in a
precision, written and read back."""

from __future__ import annotations

from recstack.ceiling_shapes import (parse_table_gather_shape, precision_kind,
                                     split_precision_kind, table_gather_shape)


def test_table_gather_shape_round_trip() -> None:
    shape = table_gather_shape(128, 4096, 20)
    assert shape == "row 128 B, table 4096 B, ids 20"
    assert parse_table_gather_shape(shape) == (128, 4096, 20)
    assert parse_table_gather_shape(" row 128 B, table 4096 B ") == (128, 4096, None)
    assert parse_table_gather_shape("row 128 B") is None
    assert parse_table_gather_shape("1024x512x256") is None


def test_precision_kind_round_trip() -> None:
    assert precision_kind("gemm", "fp32") == "gemm"
    assert precision_kind("gemm_large", "bf16") == "gemm_large_bf16"
    for kind in ("gemm", "gemm_large", "gather_table", "gather_dram", "triad_dram"):
        for precision in ("fp32", "bf16", "int8", "int4"):
            assert split_precision_kind(precision_kind(kind, precision)) == (kind, precision)
    assert split_precision_kind("gather_cached") == ("gather_cached", "fp32")
