"""Where the models follow DeepRecSys's code and the papers: MT-WnD's tower widths, DIN's and
DIEN's activations (each checked against the footprint, which is written apart)."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from recstack.footprint import footprint
from recstack.models import build_model
from recstack.models.layers import Dice
from recstack.specs import zoo_spec
from tests.conftest import one_batch, small_spec


def _linear_shapes(module: torch.nn.Module) -> list[tuple[int, int]]:
    return [(m.in_features, m.out_features) for m in module.modules()
            if isinstance(m, torch.nn.Linear)]


def test_mtwnd_towers_read_the_first_task_width_as_their_input() -> None:
    """``arch_mlp_tasks: 512-256-128`` after a shared bottom ending at 512: each tower is
    512 -> 256 -> 128, then the one-unit prediction layer."""
    spec = small_spec("mtwnd")
    assert spec.task_mlp == (512, 256, 128) and spec.top_mlp[-1] == 512
    model = build_model(spec)
    assert len(model.towers) == spec.num_tasks == 2
    for tower in model.towers:
        assert _linear_shapes(tower) == [(512, 256), (256, 128), (128, 1)]
    tower_parameters = (512 * 256 + 256) + (256 * 128 + 128) + (128 + 1)
    shared = sum(p.numel() for name, p in model.named_parameters()
                 if not name.startswith(("towers", "sparse", "wide_sparse")))
    assert footprint(spec).dense_parameters == shared + 2 * tower_parameters


@pytest.mark.parametrize("name", ["din", "dien"])
@pytest.mark.parametrize("activation", ["prelu", "dice"])
def test_learned_activations_are_built_counted_and_change_the_output(name: str,
                                                                     activation: str) -> None:
    relu = small_spec(name)
    spec = dataclasses.replace(relu, activation=activation)
    model = build_model(spec, seed=1)
    kind = torch.nn.PReLU if activation == "prelu" else Dice
    learned = [m for m in model.over.modules() if isinstance(m, kind)]
    assert [m.weight.numel() if activation == "prelu" else m.alpha.numel()
            for m in learned] == list(spec.top_mlp[:-1])  # one per hidden channel
    parameters = sum(p.numel() for p in model.parameters())
    assert parameters == footprint(spec).parameters
    batch = one_batch(spec, 8)
    with torch.inference_mode():
        out, base = model(batch), build_model(relu, seed=1)(batch)
    assert out.shape == base.shape and torch.isfinite(out).all()
    assert not torch.equal(out, base)


def test_dice_at_its_initial_statistics_is_x_times_sigmoid_x() -> None:
    """p = sigmoid(x / sqrt(1 + eps)), alpha = 0: Dice(x) = x * sigmoid(x)."""
    x = torch.linspace(-3, 3, 13).unsqueeze(0)
    assert torch.allclose(Dice(13)(x), x * torch.sigmoid(x), atol=1e-6)


def test_the_canonical_dien_keeps_its_gru_width() -> None:
    assert zoo_spec("dien").gru_hidden_size == 64


def _crossed(name: str) -> object:
    return dataclasses.replace(small_spec(name), cross_features=3, cross_buckets=200_000)


@pytest.mark.parametrize("name", ["wnd", "mtwnd"])
def test_cross_product_features_hash_pairs_of_ids_into_their_own_weights(name: str) -> None:
    from recstack.models.wnd import CROSS_MULTIPLIER

    spec = _crossed(name)
    assert spec.cross_pairs == ((0, 1), (1, 2), (2, 3))
    assert spec.cross_rows == (20,) * 3  # 200,000 buckets at the test scale (1e-4)
    model = build_model(spec, seed=1)
    batch = one_batch(spec, 8)
    ids = model.cross_ids(batch)
    first = [batch.bag_indices[t][batch.bag_offsets[t]] for t in range(4)]
    expected = torch.stack([(first[a] * CROSS_MULTIPLIER + first[b]) % 20
                            for a, b in spec.cross_pairs], dim=1)
    assert torch.equal(ids, expected) and ids.shape == (8, 3)
    assert sum(p.numel() for p in model.parameters()) == footprint(spec).parameters
    assert footprint(spec).lookups_per_sample == footprint(small_spec(name)).lookups_per_sample + 3
    with torch.inference_mode():
        crossed, fused = model(batch), build_model(spec, seed=1, fused=True)(batch)
        plain = build_model(small_spec(name), seed=1)(batch)
    assert torch.allclose(crossed, fused, atol=1e-6)
    assert not torch.equal(crossed, plain)
    from recstack.backends import build_for_backend, prepare_backend
    from recstack.static_runtime import unavailable_reason

    if unavailable_reason("cpu") is None:  # the static backend's batches: all-tables ids only
        static = build_for_backend(spec, "static", seed=1)
        prepare_backend(static, "static", [batch])
        with torch.inference_mode():
            assert torch.allclose(static(batch), crossed, atol=1e-6)


def test_cross_product_keys_belong_to_wide_and_deep() -> None:
    from recstack.specs import spec_from_config

    wnd = zoo_spec("wnd").to_config()
    spec = spec_from_config({**wnd, "wide_cross_features": 2})
    assert spec.cross_rows == (max(spec.table_rows),) * 2  # default: the largest table
    assert spec_from_config(spec.to_config()) == spec
    assert "wide_cross_features" not in wnd  # DeepRecSys's WnD has none, and neither do we
    rmc1 = {**zoo_spec("rmc1").to_config(), "wide_cross_features": 2}
    assert spec_from_config(rmc1).unused_keys() == ("wide_cross_features",)
