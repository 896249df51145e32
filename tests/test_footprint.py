"""Footprints checked against values computed by hand, tables scaled to a budget, and the
memory refusal of a build."""

from __future__ import annotations

import pytest

from recstack.admission import require_memory, scale_that_fits
from recstack.errors import RecstackError
from recstack.footprint import footprint, round_down, row_scale_for_budget
from recstack.specs import spec_from_config, zoo_spec


def test_rmc1_by_hand() -> None:
    cost = footprint(zoo_spec("rmc1"))
    # 8 tables x 4,000,000 rows x 32
    assert cost.embedding_parameters == 8 * 4_000_000 * 32 == 1_024_000_000
    # bottom 128->64->32: (128*64 + 64) + (64*32 + 32) = 8,256 + 2,080
    # top on 32 + 8*32 = 288: (288*256 + 256) + (256*64 + 64) + (64*1 + 1) = 73,984 + 16,448 + 65
    assert cost.dense_parameters == 8_256 + 2_080 + 73_984 + 16_448 + 65 == 100_833
    assert cost.model_bytes == (1_024_000_000 + 100_833) * 4
    # 2 per multiply-add: bottom 2*(8,192 + 2,048), top 2*(73,728 + 16,384 + 64)
    assert cost.flops.mlp == 20_480 + 180_352
    assert cost.flops.embedding == 8 * 80 * 32  # one add per gathered element
    assert cost.flops.interaction == 0  # cat
    assert cost.flops.total == 200_832 + 20_480
    assert cost.gathered_bytes_per_sample == 8 * 80 * 32 * 4 == 81_920
    assert cost.lookups_per_sample == 640


def test_rmc3_by_hand() -> None:
    cost = footprint(zoo_spec("rmc3"))
    assert cost.embedding_parameters == 10 * 2_000_000 * 32 == 640_000_000
    # bottom 2560->1024->256->32: 2,622,464 + 262,400 + 8,224
    # top on 32 + 10*32 = 352 -> 512 -> 256 -> 1: 180,736 + 131,328 + 257
    assert cost.dense_parameters == 2_622_464 + 262_400 + 8_224 + 180_736 + 131_328 + 257
    assert cost.flops.mlp == 2 * (2560 * 1024 + 1024 * 256 + 256 * 32) + 2 * (
        352 * 512 + 512 * 256 + 256 * 1) == 6_406_656
    assert cost.gathered_bytes_per_sample == 10 * 20 * 32 * 4 == 25_600


def test_din_by_hand() -> None:
    cost = footprint(zoo_spec("din"))
    # tables: user 1M, behaviour 100K, candidate 10M, context 10M, dim 32
    assert cost.embedding_parameters == (1_000_000 + 100_000 + 20_000_000) * 32 == 675_200_000
    # attention unit on [b, a, b-a, b*a] = 128 -> 80 -> 40 -> 1: 10,320 + 3,240 + 41
    # top on [user, interest, candidate, context] = 128 -> 200 -> 80 -> 2: 25,800 + 16,080 + 162
    assert cost.dense_parameters == 10_320 + 3_240 + 41 + 25_800 + 16_080 + 162 == 55_643
    # per behaviour 2*(128*80 + 80*40 + 40*1) = 26,960, for 250 behaviours, plus the
    # weighted sum of 250 behaviours of width 32 (2*250*32)
    assert cost.flops.attention == 250 * 26_960 + 16_000 == 6_756_000
    assert cost.flops.mlp == 2 * (128 * 200 + 200 * 80 + 80 * 2) == 83_520
    # user profile 3 lookups, candidate 1, context 3: 7 pooled rows of 32
    assert cost.flops.embedding == 7 * 32
    # 7 pooled rows and 250 behaviours, 128 bytes each
    assert cost.gathered_bytes_per_sample == (7 + 250) * 32 * 4 == 32_896
    assert cost.lookups_per_sample == 257


def test_variable_pooling_halves_the_expected_lookups() -> None:
    spec = spec_from_config({"model_type": "dlrm", "arch_mlp_bot": "4-4", "arch_mlp_top": "1",
                             "arch_embedding_size": "100-100", "arch_sparse_feature_size": 4,
                             "num_indices_per_lookup": 9, "num_indices_per_lookup_fixed": False})
    assert footprint(spec).lookups_per_sample == 2 * (9 + 1) / 2


def test_dot_interaction_width_and_flops() -> None:
    spec = spec_from_config({"model_type": "dlrm", "arch_mlp_bot": "13-8", "arch_mlp_top": "1",
                             "arch_embedding_size": "100-100-100", "arch_sparse_feature_size": 8,
                             "arch_interaction_op": "dot"})
    cost = footprint(spec)
    # 4 features (dense + 3 tables): 6 pairs, plus the dense vector of 8 -> top input 14
    assert cost.dense_parameters == (13 * 8 + 8) + (14 * 1 + 1)
    assert cost.flops.interaction == 2 * 4 * 4 * 8


def test_scaling_scales_embeddings_only() -> None:
    full, tenth = footprint(zoo_spec("rmc2")), footprint(zoo_spec("rmc2").scaled(0.1))
    assert tenth.embedding_parameters == full.embedding_parameters // 10
    assert tenth.dense_parameters == full.dense_parameters
    assert tenth.flops == full.flops


def test_refusal_names_estimate_and_the_scale_that_fits() -> None:
    spec = zoo_spec("rmc1")
    with pytest.raises(RecstackError) as error:
        require_memory(spec, available_bytes=2_400_000_000)
    text = str(error.value)
    # 4.096 GB of parameters, 1.2x to build; (2.4 GB / 1.2 - dense) / 4.096 GB = 0.488...
    assert "needs about 4.92 GB to build (4.10 GB of parameters)" in text
    assert "2.40 GB is available" in text
    assert "use --row-scale 0.48 or smaller" in text
    require_memory(spec.scaled(0.48), available_bytes=2_400_000_000)  # and that one fits


def test_scale_that_fits() -> None:
    assert scale_that_fits(zoo_spec("ncf"), 10**12) == 1.0
    assert scale_that_fits(zoo_spec("rmc3"), 100) is None
    assert scale_that_fits(zoo_spec("rmc1"), 50_000_000) == pytest.approx(0.01, abs=0.0011)


def test_row_scale_for_budget() -> None:
    spec = zoo_spec("rmc1")  # 4.096 GB of tables
    assert row_scale_for_budget(spec, 10**12) == 1.0
    assert row_scale_for_budget(spec, 2_000_000_000) == 0.48  # 0.488..., rounded down
    assert row_scale_for_budget(spec, 2_000_000_000, significant=3) == 0.488
    assert row_scale_for_budget(spec, 0) is None
    assert row_scale_for_budget(spec, -5.0) is None
    for budget in (10**6, 5 * 10**7, 2 * 10**9):
        scale = row_scale_for_budget(spec, budget)
        assert footprint(spec.scaled(scale)).embedding_bytes <= budget


def test_row_scale_for_budget_checks_the_rounded_rows() -> None:
    # Each table keeps at least one row: 4 tables of 8 floats need 128 bytes at any scale.
    spec = spec_from_config({"model_type": "dlrm", "arch_mlp_bot": "4-8", "arch_mlp_top": "1",
                             "arch_embedding_size": "1000-1000-10-10",
                             "arch_sparse_feature_size": 8})
    assert row_scale_for_budget(spec, 127) is None
    scale = row_scale_for_budget(spec, 2_000)
    assert scale is not None
    assert footprint(spec.scaled(scale)).embedding_bytes <= 2_000


def test_round_down() -> None:
    assert round_down(0.4882) == 0.48
    assert round_down(0.4882, significant=3) == 0.488
    assert round_down(123.9) == 120

