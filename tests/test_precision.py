"""Precision values: parsing, bytes per row, what runs where."""

from __future__ import annotations

import pytest

from recstack.errors import SpecError
from recstack.precision import FP32, Precision, row_bytes, unsupported_reason


def test_parse_reads_both_parts_and_defaults_the_missing_one() -> None:
    assert Precision.parse("emb=int8,dense=bf16") == Precision("int8", "bf16")
    assert Precision.parse("dense=int8") == Precision("fp32", "int8")
    assert Precision.parse(" embedding = int4 ") == Precision("int4", "fp32")
    assert Precision.parse("fp32") == FP32
    assert Precision.parse(Precision("int8", "bf16").label) == Precision("int8", "bf16")
    assert FP32.label == "fp32" and FP32.is_reference


@pytest.mark.parametrize("text", ["int3", "emb=int3", "emb=int8,emb=int4", "dense=int4",
                                  "emb:int8", "", "emb=int8,,dense=bf16", "wide=int8"])
def test_a_bad_precision_names_the_field_and_what_is_allowed(text: str) -> None:
    with pytest.raises(SpecError) as caught:
        Precision.parse(text)
    message = str(caught.value)
    assert "precision" in message and "\n" not in message
    assert "int4" in message  # the allowed values are named


def test_row_bytes_include_the_scale_and_bias_of_quantized_rows() -> None:
    assert row_bytes("fp32", 32) == 128
    assert row_bytes("fp16", 32) == row_bytes("bf16", 32) == 64
    assert row_bytes("int8", 32) == 32 + 4 + 4    # uint8 values, float32 scale and bias
    assert row_bytes("int4", 32) == 16 + 2 + 2    # two values per byte, float16 scale, bias


def test_tables_that_would_not_shrink_stay_fp32() -> None:
    int8, int4 = Precision("int8"), Precision("int4")
    assert int8.table_precision(1) == "fp32"      # 9 bytes against 4
    assert int8.table_precision(2) == "fp32"      # 10 against 8
    assert int8.table_precision(3) == "int8"      # 11 against 12
    assert int4.table_precision(2) == "int4"      # 5 against 8
    assert int4.table_precision(3) == "fp32"      # FBGEMM packs even widths only
    assert int4.table_row_bytes(1) == 4


def test_quantized_kernels_run_on_the_cpu_only_and_compile_refuses_dense_int8() -> None:
    assert unsupported_reason(Precision("int8"), "fused", "cuda") is not None
    assert unsupported_reason(Precision("fp32", "int8"), "eager", "cuda:0") is not None
    assert unsupported_reason(Precision("bf16", "bf16"), "eager", "cuda") is None
    assert unsupported_reason(Precision("fp32", "int8"), "compile") is not None
    assert unsupported_reason(Precision("int4"), "compile") is None
    for backend in ("eager", "fused", "static"):
        assert unsupported_reason(Precision("int4", "int8"), backend) is None
