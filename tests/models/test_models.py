"""The eight models: shapes, finiteness, determinism, and agreement with the footprint."""

from __future__ import annotations

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from recstack.errors import RecstackError
from recstack.footprint import footprint
from recstack.models import build_model
from recstack.models.layers import PART_SCOPE_PREFIX, part_scope
from recstack.specs import ZOO_NAMES, zoo_spec
from tests.conftest import one_batch, small_spec

OUTPUTS = {"rmc1": 1, "rmc2": 1, "rmc3": 1, "ncf": 1, "wnd": 1, "mtwnd": 2, "din": 2, "dien": 2}
PARTS = {
    "dlrm": {"dense", "sparse", "interaction", "over"},
    "ncf": {"sparse", "interaction", "over"},
    "wnd": {"sparse", "wide", "interaction", "over"},
    "mtwnd": {"sparse", "wide", "interaction", "over"},
    "din": {"sparse", "attention", "interaction", "over"},
    "dien": {"sparse", "recurrent", "attention", "interaction", "over"},
}


@pytest.mark.parametrize("name", ZOO_NAMES)
def test_forward_shape_range_and_determinism(name: str) -> None:
    spec = small_spec(name)
    batch = one_batch(spec, batch_size=8)
    with torch.inference_mode():
        first = build_model(spec, seed=3)(batch)
        second = build_model(spec, seed=3)(batch)
        other_seed = build_model(spec, seed=4)(batch)
    assert first.shape == (8, OUTPUTS[name])
    assert first.dtype == torch.float32
    assert torch.isfinite(first).all()
    assert ((first >= 0) & (first <= 1)).all()
    assert torch.equal(first, second)
    assert not torch.equal(first, other_seed)
    if spec.model_type in ("din", "dien"):  # softmax over the two classes
        torch.testing.assert_close(first.sum(dim=1), torch.ones(8))


@pytest.mark.parametrize("name", ZOO_NAMES)
def test_parameters_and_flops_agree_with_the_footprint(name: str) -> None:
    """The footprint is computed from the spec alone; the model is built separately."""
    spec = small_spec(name)
    model = build_model(spec)
    cost = footprint(spec)
    assert sum(p.numel() for p in model.parameters()) == cost.parameters
    batch = one_batch(spec, batch_size=4)
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        model(batch)
    assert counter.get_total_flops() / 4 == cost.flops.dense_math


@pytest.mark.parametrize("name", ZOO_NAMES)
def test_parts_are_marked_for_the_profiler(name: str) -> None:
    spec = small_spec(name)
    model = build_model(spec)
    batch = one_batch(spec, batch_size=2)
    with torch.inference_mode(), torch.profiler.profile(
            activities=[torch.profiler.ProfilerActivity.CPU]) as profile:
        model(batch)
    scopes = {event.name.removeprefix(PART_SCOPE_PREFIX) for event in profile.events()
              if event.name.startswith(PART_SCOPE_PREFIX)}
    assert scopes == PARTS[spec.model_type]


def test_part_scopes_cost_nothing_outside_profiling() -> None:
    import contextlib

    assert isinstance(part_scope("sparse"), contextlib.nullcontext)


def test_dot_interaction_model_runs() -> None:
    spec = zoo_spec("rmc1").scaled(1e-4)
    from dataclasses import replace

    dot = replace(spec, interaction="dot")
    output = build_model(dot)(one_batch(dot))
    assert output.shape == (8, 1)


@pytest.fixture
def tiny_memory(monkeypatch: pytest.MonkeyPatch) -> int:
    """Pretend the machine has 1 GB available."""
    available = 1_000_000_000
    monkeypatch.setattr("recstack.admission.available_memory_bytes", lambda: available)
    return available


def test_build_refuses_before_allocating(tiny_memory: int) -> None:
    with pytest.raises(RecstackError, match="use --row-scale 0.2 or smaller"):
        build_model(zoo_spec("rmc1"))


def test_models_move_to_another_dtype() -> None:
    spec = small_spec("rmc3")
    model = build_model(spec, dtype=torch.float64)
    assert all(p.dtype == torch.float64 for p in model.parameters())
