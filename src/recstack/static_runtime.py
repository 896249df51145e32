"""The ``static`` execution backend: a model's forward run by PyTorch's Static Runtime.

Static Runtime is PyTorch's C++ inference runtime for TorchScript graphs, built for
recommendation models served at small batch: it runs a frozen graph's operators from C++
(most through out-variants that reuse their buffers from call to call) with no Python between
them. At batch 1 the Python forward spends about 0.7 us per operator call outside the
operators (argument parsing, dispatch, result wrapping: PyTorch's own cost per call); RMC1's
16 calls then cost a quarter of its latency. The same operators run from
Static Runtime leave about a sixth of that outside them.

How a model gets there: the fused model (:mod:`recstack.models`, fused layout) is traced on a
batch with :func:`torch.jit.trace`, frozen (weights become constants of the graph, sharing the
weights' memory: no copy) and handed to ``torch._C._jit_to_static_module``. A trace records
one path through the Python code: the shapes the batch fixes (batch size, ids per table) are
constants of the graph. So a graph is made per *signature* (batch size, ids per table): one per
point with fixed pooling, one per distinct batch with variable pooling. :meth:`prepare`
makes them before anything is timed and checks each graph's output against the Python
forward's on the batch it was made from; a batch whose signature was not prepared is an
error, never a trace inside a timed loop.

Part scopes: the Python forward opens a profiler scope per model part only while a profiler
records (:func:`recstack.models.layers.part_scope`). A graph keeps what was traced, so a
point that is profiled gets a second graph per signature traced with its part scopes, and the
model runs that one while a profiler records and the plain one otherwise: the same behaviour
as the Python forward.

``torch.jit.trace`` is deprecated in torch 2.13 (it warns, and still works; its warnings are
silenced here). Where this torch has no Static Runtime, :func:`unavailable_reason` says so
and the backend fails with that reason.
"""

from __future__ import annotations

import operator
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import torch

from recstack.batch import Batch
from recstack.errors import RecstackError
from recstack.models.layers import part_scopes_traced

_INPUT_FIELDS = ("dense", "pooled_ids", "pooled_offsets", "sequence")
"""The batch fields a fused model reads, in the order a graph takes them (those present)."""
_profiler_enabled = torch.autograd._profiler_enabled


def unavailable_reason(device: str = "cpu") -> str | None:
    """Why the static backend cannot run here (on ``device``), or None."""
    if device.startswith("cuda"):
        return "PyTorch's Static Runtime runs on the CPU only; use eager, fused or compile"
    if not hasattr(torch._C, "_jit_to_static_module") or not hasattr(torch.jit, "trace"):
        return f"this torch ({torch.__version__}) has no Static Runtime"
    return None


def self_check() -> str | None:
    """Why a tiny graph does not run in Static Runtime here (tracing, freezing, running and
    comparing a linear layer with a ReLU), or None when it does."""
    reason = unavailable_reason()
    if reason is not None:
        return reason
    layer = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU()).eval()
    x = torch.arange(8.0).reshape(2, 4)
    try:
        with torch.inference_mode():
            same = torch.allclose(_static_module(layer, (x,))(x), layer(x))
    except Exception as error:  # noqa: BLE001 - whatever fails is the answer
        first = next((line for line in str(error).splitlines() if line.strip()), "")
        return f"{type(error).__name__}: {first.strip()[:200]}"
    return None if same else "a tiny graph's output differs from the Python forward's"


def _static_module(module: torch.nn.Module, inputs: tuple[torch.Tensor, ...]) -> Any:
    """``module`` traced on ``inputs``, frozen (its weights become constants of the graph,
    the same memory) and handed to Static Runtime. The trace's deprecation notice and its
    notes that shapes become constants are silenced: graphs are made per signature for
    that reason."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(module, inputs, check_trace=False)
        return torch._C._jit_to_static_module(torch.jit.freeze(traced)._c)


def signature(batch: Batch) -> tuple[int, tuple[int, ...]]:
    """What a traced graph fixes about its batches: the batch size and the ids per table."""
    return batch.size, batch.lookups


class _Traceable(torch.nn.Module):
    """The fused model as a function of tensors (what ``torch.jit.trace`` takes), with the
    batch's plain-int fields (size, ids per table) taken from the batch it is traced on."""

    def __init__(self, model: torch.nn.Module, template: Batch, fields: tuple[str, ...]):
        super().__init__()
        self.model = model
        self.size = template.size
        self.lookups = template.lookups
        self.fields = fields

    def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
        given = dict(zip(self.fields, tensors))
        return self.model(Batch(size=self.size, dense=given.get("dense"), bag_indices=(),
                                bag_offsets=(), sequence=given.get("sequence"),
                                pooled_ids=given.get("pooled_ids"),
                                pooled_offsets=given.get("pooled_offsets"),
                                lookups=self.lookups))


class StaticRuntimeModel:
    """A fused model run by Static Runtime: ``model(batch)`` as for any backend, once
    :meth:`prepare` has seen the batch's signature. Output as the model's.

    Not an ``nn.Module``: a module call costs about a microsecond of Python, which is what
    this backend exists to remove. ``model`` (the Python model) owns the weights.
    """

    def __init__(self, model: torch.nn.Module):
        reason = unavailable_reason(str(next(model.parameters()).device))
        if reason is not None:
            raise RecstackError(f"backend static: {reason}")
        self.model = model
        self.spec = getattr(model, "spec", None)
        self._plain: dict[tuple[int, tuple[int, ...]], Any] = {}
        self._scoped: dict[tuple[int, tuple[int, ...]], Any] = {}
        self._fields: tuple[str, ...] | None = None
        self._inputs: Callable[[Batch], tuple[torch.Tensor, ...]] | None = None

    @property
    def graphs(self) -> int:
        """Graphs made so far (plain and with part scopes)."""
        return len(self._plain) + len(self._scoped)

    def prepare(self, batches: Sequence[Batch], part_scopes: bool = False) -> None:
        """Makes the graph of every signature among ``batches`` (and, with ``part_scopes``,
        its variant with the model's part scopes, for profiling), each checked against the
        Python forward on the batch it was traced on. RecstackError when tracing or the
        runtime fails, or a graph's output differs."""
        for batch in batches:
            key = signature(batch)
            if key not in self._plain:
                self._plain[key] = self._make(batch, scoped=False)
            if part_scopes and key not in self._scoped:
                self._scoped[key] = self._make(batch, scoped=True)

    def _make(self, batch: Batch, scoped: bool) -> Any:
        if self._fields is None:
            self._fields = tuple(name for name in _INPUT_FIELDS
                                 if getattr(batch, name) is not None)
            self._inputs = operator.attrgetter(*self._fields)
            if len(self._fields) == 1:  # attrgetter of one field returns it bare
                single = self._inputs
                self._inputs = lambda b: (single(b),)
        inputs = self._inputs(batch)
        try:
            with torch.inference_mode():
                # The Python forward first: it fills the model's caches (id shifts), so the
                # trace records them as constants rather than the work that made them.
                expected = self.model(batch)
                traceable = _Traceable(self.model, batch, self._fields).eval()
                with part_scopes_traced(scoped):  # with the scopes or surely without
                    runtime = _static_module(traceable, inputs)
                output = runtime(*inputs)
        except (RuntimeError, TypeError, ValueError) as error:
            first = next((line.strip() for line in str(error).splitlines() if line.strip()),
                         type(error).__name__)
            raise RecstackError(f"backend static: Static Runtime could not run this model: "
                                f"{first[:200]}") from None
        if not torch.allclose(output, expected, rtol=1e-5, atol=1e-6):
            raise RecstackError("backend static: the Static Runtime graph's output differs from "
                                "the Python forward's on the batch it was traced on")
        return runtime

    def __call__(self, batch: Batch) -> torch.Tensor:
        key = (batch.size, batch.lookups)  # signature(batch), without a call in the timed loop
        # While a profiler records, the graph with part scopes where one was made (else the
        # plain one: the profile then has no parts, as a compiled model's).
        runtime = self._scoped.get(key) if self._scoped and _profiler_enabled() else None
        if runtime is None:
            runtime = self._plain.get(key)
            if runtime is None:
                raise RecstackError(
                    f"backend static: no graph for a batch of {batch.size} with "
                    f"{sum(batch.lookups)} ids; prepare() every batch before running it")
        return runtime(*self._inputs(batch))
