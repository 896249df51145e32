"""Features from the spec alone, checked by hand on canonical models."""

from __future__ import annotations

from recstack.features import FEATURE_COLUMNS, FEATURES, feature_table, spec_features
from recstack.footprint import footprint
from recstack.specs import zoo_spec


def test_rmc1_features_by_hand() -> None:
    features = spec_features(zoo_spec("rmc1"))
    assert features["num_tables"] == 8
    assert features["lookups"] == 8 * 80
    assert features["gathered_bytes"] == 8 * 80 * 32 * 4
    assert features["embedding_bytes"] == 8 * 4_000_000 * 32 * 4
    # Bottom 128-64-32 and top (32 + 8*32)-256-64-1, 2 FLOPs per multiply-add.
    bottom = 2 * (128 * 64 + 64 * 32)
    top = 2 * (288 * 256 + 256 * 64 + 64 * 1)
    assert features["flops_mlp"] == bottom + top
    assert features["mlp_depth"] == 5 and features["widest_layer"] == 256
    assert features["has_attention"] == features["has_recurrence"] == 0
    assert features["interaction_dot"] == 0 and features["num_tasks"] == 1
    assert features["bytes_per_flop"] == features["gathered_bytes"] / features["flops_total"]


def test_attention_and_recurrence_flags_and_sizes() -> None:
    din, dien = spec_features(zoo_spec("din")), spec_features(zoo_spec("dien"))
    assert din["has_attention"] == 1 and din["has_recurrence"] == 0
    assert din["sequence_length"] == 250 and din["recurrence_length"] == 0
    assert din["attention_width"] == 80 + 40 and din["flops_attention"] > 0
    assert dien["has_attention"] == dien["has_recurrence"] == 1
    assert dien["recurrence_length"] == 40 and dien["flops_recurrent"] > 0
    assert spec_features(zoo_spec("mtwnd"))["num_tasks"] == 2


def test_feature_table_uses_the_footprint_and_has_every_column() -> None:
    specs = [zoo_spec(name) for name in ("rmc2", "ncf", "wnd")]
    table = feature_table(specs)
    assert list(table.columns) == FEATURE_COLUMNS
    assert set(FEATURES) <= set(table.columns)
    for spec, row in zip(specs, table.itertuples()):
        size = footprint(spec)
        assert row.flops_total == size.flops.total
        assert row.parameter_bytes == size.model_bytes


def test_bytes_follow_the_precision_and_work_does_not() -> None:
    from recstack.precision import Precision

    spec = zoo_spec("rmc1")
    fp32 = spec_features(spec)
    int8 = spec_features(spec, Precision("int8", "int8"))
    assert fp32["embedding_bytes_per_element"] == 4.0
    assert fp32["dense_bytes_per_parameter"] == 4.0
    assert (fp32["embedding_precision"], fp32["dense_precision"]) == ("fp32", "fp32")
    # 32-wide rows: 32 bytes and a float32 scale and bias each, against 128
    assert int8["embedding_bytes_per_element"] == (32 + 8) / 32
    assert int8["embedding_bytes"] == fp32["embedding_bytes"] * 40 / 128
    assert int8["gathered_bytes"] == 8 * 80 * 40
    size = footprint(spec, Precision("int8", "int8"))
    assert int8["dense_bytes_per_parameter"] == size.dense_bytes / size.dense_parameters
    assert 1 < int8["dense_bytes_per_parameter"] < 2  # int8 weights, float32 biases and scales
    assert int8["parameter_bytes"] == size.model_bytes
    assert int8["bytes_per_flop"] == int8["gathered_bytes"] / int8["flops_total"]
    assert int8["flops_total"] == fp32["flops_total"]
    bf16 = spec_features(spec, Precision("bf16", "bf16"))
    assert bf16["embedding_bytes_per_element"] == bf16["dense_bytes_per_parameter"] == 2.0


def test_feature_table_has_a_row_per_model_and_precision() -> None:
    from recstack.precision import FP32, Precision

    spec = zoo_spec("rmc1")
    int8 = Precision("int8", "fp32")
    table = feature_table([spec, (spec, int8), (spec, FP32)])
    assert list(table.columns) == FEATURE_COLUMNS
    assert table[["model", "embedding_precision", "dense_precision"]].values.tolist() == [
        ["rmc1", "fp32", "fp32"], ["rmc1", "int8", "fp32"]]
    assert table.embedding_bytes_per_element.tolist() == [4.0, 1.25]
