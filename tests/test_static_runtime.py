"""The static backend: every model traced into Static Runtime gives the eager outputs."""

from __future__ import annotations

import pytest
import torch

from recstack import static_runtime
from recstack.backends import build_for_backend, prepare_backend, resolve_backend
from recstack.batch import Batch
from recstack.errors import RecstackError
from recstack.inputs import QuerySpec, generate_batches
from recstack.specs import ZOO_NAMES
from tests.conftest import outputs, small_spec

pytestmark = pytest.mark.skipif(static_runtime.unavailable_reason() is not None,
                                reason=f"{static_runtime.unavailable_reason()}")



@pytest.mark.parametrize("name", ZOO_NAMES)
@pytest.mark.parametrize("pooling, batch_size", [("fixed", 8), ("variable", 8), ("fixed", 1)])
def test_static_gives_the_eager_outputs(name: str, pooling: str, batch_size: int) -> None:
    spec = small_spec(name)
    batches = generate_batches(spec, QuerySpec(seed=2, pooling=pooling), batch_size, 3)
    static = build_for_backend(spec, "static", seed=5)
    seconds = prepare_backend(static, "static", batches)
    assert seconds is not None and seconds > 0
    # One graph per signature: fixed pooling gives every batch the same ids per table.
    signatures = {static_runtime.signature(batch) for batch in batches}
    assert static.graphs == len(signatures)
    if pooling == "fixed":
        assert len(signatures) == 1
    elif name.startswith("rmc"):  # 20 to 120 ids per bag: each batch draws its own counts
        assert len(signatures) == 3
    expected = outputs(build_for_backend(spec, "eager", seed=5), batches)
    for wanted, actual in zip(expected, outputs(static, batches)):
        torch.testing.assert_close(actual, wanted)


def test_an_unprepared_batch_is_refused_not_traced() -> None:
    spec = small_spec("rmc1")
    static = build_for_backend(spec, "static")
    first, other = generate_batches(spec, QuerySpec(), 4, 1) + generate_batches(
        spec, QuerySpec(), 2, 1)
    static.prepare([first])
    with torch.inference_mode():
        static(first)
        with pytest.raises(RecstackError, match="no graph for a batch of 2 .*prepare"):
            static(other)
    assert static.graphs == 1


def test_profiled_runs_use_the_graph_with_part_scopes() -> None:
    spec = small_spec("rmc1")
    (batch,) = generate_batches(spec, QuerySpec(), 4, 1)
    static = build_for_backend(spec, "static")

    def profiled_names() -> set[str]:
        with torch.inference_mode(), torch.profiler.profile(
                activities=[torch.profiler.ProfilerActivity.CPU]) as profile:
            static(batch)
        return {event.name for event in profile.events()}

    # Plain graph only (made while a profiler records, and still without scopes): it runs
    # under the profiler too, without parts.
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]):
        static.prepare([batch])
    assert not any(name.startswith("recstack::") for name in profiled_names())
    static.prepare([batch], part_scopes=True)
    assert static.graphs == 2
    names = profiled_names()
    assert {"recstack::dense", "recstack::sparse", "recstack::interaction",
            "recstack::over"} <= names
    assert "aten::embedding_bag" in names


def test_static_refuses_cuda_before_building(monkeypatch: pytest.MonkeyPatch) -> None:
    spec = small_spec("rmc1")
    monkeypatch.setattr("recstack.models.build_model",
                        lambda *args, **kwargs: pytest.fail("built a model for nothing"))
    with pytest.raises(RecstackError, match="^backend static: .*CPU only"):
        build_for_backend(spec, "static", device="cuda:0")
    # auto never resolves to static where it cannot run: the fused layout instead.
    choices = {"choices": {"cuda": {"rmc1": "static"}, "cpu": {"rmc1": "static"}}}
    monkeypatch.setattr("recstack.backends.backend_choices", lambda: choices)
    assert resolve_backend("auto", spec, device="cuda") == "fused"
    assert resolve_backend("auto", spec, device="cpu") == "static"
    monkeypatch.setattr(static_runtime, "unavailable_reason", lambda device="cpu": "no SR")
    assert resolve_backend("auto", spec, device="cpu") == "fused"


def test_a_runtime_failure_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(module: object) -> object:
        raise RuntimeError("unsupported op: aten::frobnicate\n  long C++ trace\n  more")

    monkeypatch.setattr(torch._C, "_jit_to_static_module", broken)
    spec = small_spec("ncf")
    static = build_for_backend(spec, "static")
    with pytest.raises(RecstackError) as caught:
        static.prepare(generate_batches(spec, QuerySpec(), 2, 1))
    assert str(caught.value) == ("backend static: Static Runtime could not run this model: "
                                 "unsupported op: aten::frobnicate")


def test_a_graph_that_differs_from_the_python_forward_is_refused() -> None:
    class Noisy(torch.nn.Module):
        """Its output depends on a random draw: a trace replays a new one."""

        def __init__(self) -> None:
            super().__init__()
            self.scale = torch.nn.Parameter(torch.ones(1), requires_grad=False)

        def forward(self, batch: Batch) -> torch.Tensor:
            return torch.rand(batch.size, 1) * self.scale + batch.dense.sum(1, keepdim=True)

    spec = small_spec("rmc1")
    static = static_runtime.StaticRuntimeModel(Noisy())
    with pytest.raises(RecstackError, match="output differs from the Python forward"):
        static.prepare(generate_batches(spec, QuerySpec(), 2, 1))


@pytest.mark.parametrize("name, computed", [
    ("dien", {"aten::arange", "aten::remainder", "aten::index"}),  # each step's table base
    ("rmc2", {"aten::repeat_interleave"}),  # each id's table shift
])
def test_the_models_caches_are_constants_of_the_graph(name: str, computed: set[str]) -> None:
    """What the Python forward caches (id shifts, step bases) is computed once, not in every
    run of the graph."""
    spec = small_spec(name)
    batches = generate_batches(spec, QuerySpec(), 4, 1)
    static = build_for_backend(spec, "static")
    static.prepare(batches)
    with torch.inference_mode(), torch.profiler.profile(
            activities=[torch.profiler.ProfilerActivity.CPU]) as profile:
        static(batches[0])
    names = {event.name for event in profile.events()}
    assert "aten::embedding_bag" in names and not names & computed
