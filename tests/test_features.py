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
