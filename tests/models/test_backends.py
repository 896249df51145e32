"""Execution backends give the same outputs: eager, fused and compile, for every model type
(static: tests/test_static_runtime.py).

The compile tests compile two small models (RMC1 and NCF, the quickest to compile);
compiling all eight takes minutes. Every model type compiles on this machine
(benchmarks/backend_choice.py compiles and checks all eight): DIEN takes about 100 s, because
its 250-step AUGRU recurrence unrolls into one long graph, and WnD, MT-WnD and DIN 20-25 s
each, too long for the test suite. All eight are compared eager against fused here.
"""

from __future__ import annotations

import pytest
import torch

from recstack.backends import (AUTO, BACKENDS, backend_choices, build_for_backend,
                               error_headline, resolve_backend, warm_up_compiled)
from recstack.collect.timing import TimingSettings, measure_point
from recstack.errors import RecstackError
from recstack.footprint import footprint
from recstack.inputs import QuerySpec, generate_batches
from recstack.models import build_model
from recstack.points import Point
from recstack.specs import ZOO_NAMES, zoo_spec
from recstack.static_runtime import unavailable_reason
from recstack.worker import run_isolated
from tests.conftest import one_batch, outputs, small_spec

COMPILED = ("rmc1", "ncf")



@pytest.mark.parametrize("name", ZOO_NAMES)
@pytest.mark.parametrize("pooling, batch_size", [("fixed", 8), ("variable", 8), ("fixed", 1)])
def test_fused_gives_the_eager_outputs(name: str, pooling: str, batch_size: int) -> None:
    spec = small_spec(name)
    batches = generate_batches(spec, QuerySpec(seed=2, pooling=pooling), batch_size, 2)
    eager = outputs(build_for_backend(spec, "eager", seed=5), batches)
    fused = outputs(build_for_backend(spec, "fused", seed=5), batches)
    for expected, actual in zip(eager, fused):
        torch.testing.assert_close(actual, expected)


@pytest.mark.parametrize("name", ZOO_NAMES)
def test_fused_tables_hold_the_eager_weights(name: str) -> None:
    spec = small_spec(name)
    eager, fused = build_model(spec, seed=7), build_model(spec, seed=7, fused=True)
    pairs = [(eager.sparse, fused.sparse)]
    if hasattr(eager, "wide_sparse"):
        pairs.append((eager.wide_sparse, fused.wide_sparse))
    if hasattr(eager, "behaviours"):
        pairs.append((eager.behaviours, fused.behaviours))
    for eager_tables, fused_tables in pairs:
        expected, actual = eager_tables.table_weights(), fused_tables.table_weights()
        assert len(expected) == len(actual)
        for e, a in zip(expected, actual):
            assert torch.equal(e, a)
    # The dense layers come from the same seeded generator too.
    dense = {k: v for k, v in eager.state_dict().items() if "sparse" not in k
             and "behaviours" not in k}
    fused_state = fused.state_dict()
    for key, value in dense.items():
        assert torch.equal(fused_state[key], value), key


def test_fused_is_one_lookup_for_all_tables() -> None:
    spec = small_spec("rmc2")
    model = build_for_backend(spec, "fused")
    with torch.inference_mode(), torch.profiler.profile(
            activities=[torch.profiler.ProfilerActivity.CPU]) as profile:
        model(one_batch(spec, 4))
    bags = [e for e in profile.events() if e.name == "aten::embedding_bag"]
    assert len(bags) == 1 and spec.num_tables > 1


@pytest.mark.parametrize("name", COMPILED)
def test_compile_gives_the_eager_outputs(name: str) -> None:
    spec = small_spec(name)
    batches = generate_batches(spec, QuerySpec(seed=2), 8, 2)
    compiled = build_for_backend(spec, "compile", seed=5)
    try:
        warm_up_compiled(compiled, batches)
    except RecstackError as error:
        pytest.skip(f"torch.compile does not work here: {error}")
    eager = outputs(build_for_backend(spec, "eager", seed=5), batches)
    for expected, actual in zip(eager, outputs(compiled, batches)):
        torch.testing.assert_close(actual, expected)


def test_a_error_headline_is_one_line() -> None:
    class Broken(torch.nn.Module):
        def forward(self, batch: object) -> torch.Tensor:
            raise RuntimeError("C++ compile error: cannot find cl\nlong traceback\nmore")

    spec = small_spec("ncf")
    with pytest.raises(RecstackError) as caught:
        warm_up_compiled(Broken(), [one_batch(spec, 2)])
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("backend compile: torch.compile failed here: RuntimeError: "
                              "C++ compile error")
    assert error_headline(ValueError("")) == "ValueError: "


def test_auto_resolves_to_a_measured_backend() -> None:
    spec = small_spec("rmc1")
    chosen = resolve_backend(AUTO, spec)
    assert chosen in BACKENDS
    assert chosen == backend_choices()["choices"]["cpu"]["rmc1"]
    assert resolve_backend("eager", spec) == "eager"
    # Never measured: the reference backend.
    assert resolve_backend(AUTO, spec, device="cuda") in BACKENDS
    with pytest.raises(RecstackError, match="^backend: 'tensorrt'"):
        build_for_backend(spec, "tensorrt")


def test_auto_resolves_per_batch_size_at_the_nearest_measured(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from recstack import backends
    from recstack.sweep import plan_specs

    document = {"choices": {"cpu": {"rmc1": "fused", "dlrm": "eager"}},
                "by_batch_size": {"cpu": {"rmc1": {1: "static", 16: "static", 256: "eager"},
                                          "ncf": {"1": "fused"}}}}
    monkeypatch.setattr(backends, "backend_choices", lambda: document)
    spec = small_spec("rmc1")
    assert resolve_backend(AUTO, spec) == "fused"  # no batch size: the model's choice
    # Nearest on a log scale, ties to the larger: 4 is as far from 1 as from 16, 64 from 16
    # as from 256.
    sizes = (1, 3, 4, 16, 63, 64, 4096)
    assert [resolve_backend(AUTO, spec, batch_size=b) for b in sizes] == [
        "static", "static", "static", "static", "static", "eager", "eager"]
    planned = plan_specs([spec], [64, 2], [1], ["cpu"], [AUTO]).points
    assert [point.backend for point in planned] == ["eager", "static"]
    # Models the file has no sizes for fall back to their choice, then their type's.
    assert resolve_backend(AUTO, small_spec("rmc2"), batch_size=1) == "eager"
    assert resolve_backend(AUTO, small_spec("ncf"), batch_size=300) == "fused"  # keys as text


@pytest.mark.parametrize("backend", [
    "fused", pytest.param("static", marks=pytest.mark.skipif(
        unavailable_reason() is not None, reason=str(unavailable_reason())))])
def test_build_peak_memory_stays_within_the_tables(backend: str) -> None:
    """Built directly in the fused layout: no second copy of any table, at a scale where
    the tables (about 200 MB) dominate everything else the build allocates. The static
    backend's frozen graphs hold the weights as constants: the same memory, no copy either."""
    spec = zoo_spec("rmc1").scaled(0.05)  # 8 x 200,000 x 32 float32
    settings = TimingSettings(warmup_iterations=1, warmup_seconds=0.0, min_seconds=0.0,
                              min_iterations=1, max_iterations=1, distinct_batches=1)
    result = run_isolated(measure_point, Point(spec, 1, threads=1, backend=backend), settings)
    embedding_bytes = footprint(spec).embedding_bytes
    assert result.extra["backend"] == backend
    assert result.peak_memory_growth_bytes <= 1.2 * embedding_bytes
    assert result.peak_memory_growth_bytes >= 0.8 * embedding_bytes  # it really built them
    if backend == "static":  # the graphs' preparation, timed apart from the build
        assert result.extra["compile_seconds"] > 0


def test_fused_reads_the_batch_ids_without_concatenating_them() -> None:
    spec = small_spec("rmc1")
    model = build_for_backend(spec, "fused")
    batch = one_batch(spec, 4)
    with torch.inference_mode(), torch.profiler.profile(
            activities=[torch.profiler.ProfilerActivity.CPU]) as profile:
        model(batch)
    names = [e.name for e in profile.events()]
    # RMC1's interaction concatenates (one cat); the fused gather itself adds none.
    assert names.count("aten::cat") == 1 and "aten::stack" not in names


def test_fused_shifts_flat_for_small_batches_broadcast_for_large(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from recstack.models import embeddings

    spec = small_spec("rmc1")
    eager = build_for_backend(spec, "eager", seed=1)
    batches = generate_batches(spec, QuerySpec(seed=3), 4, 2)
    expected = outputs(eager, batches)
    lookups = batches[0].lookups
    for limit, shape in ((sum(lookups), (sum(lookups),)), (sum(lookups) - 1, (len(lookups), 1))):
        monkeypatch.setattr(embeddings, "FLAT_SHIFT_MAX_IDS", limit)
        fused = build_for_backend(spec, "fused", seed=1)
        torch.testing.assert_close(outputs(fused, batches), expected)
        assert tuple(fused.sparse._shifts[lookups].shape) == shape
    # The flat form adds the shifts in one operator, with no views of the ids around it.
    monkeypatch.setattr(embeddings, "FLAT_SHIFT_MAX_IDS", 1 << 16)
    fused = build_for_backend(spec, "fused", seed=1)
    with torch.inference_mode():
        prepared = fused.sparse.prepare(batches[0])  # fills the cache
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as profile:
            fused.sparse.prepare(batches[0])
    assert [e.name for e in profile.events()] == ["aten::add"]
    assert prepared[0].shape == batches[0].pooled_ids.shape


def test_fused_shifts_are_dropped_when_the_module_moves() -> None:
    spec = small_spec("rmc1")
    batches = generate_batches(spec, QuerySpec(seed=3), 4, 1)
    fused = build_for_backend(spec, "fused", seed=1)
    before = outputs(fused, batches)
    assert fused.sparse._shifts
    fused.to("cpu")  # what .to(device) runs (nn.Module._apply), here without a second device
    assert not fused.sparse._shifts
    torch.testing.assert_close(outputs(fused, batches), before)
