"""Dense building blocks shared by the models, and the profiler scopes of model parts."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn
from torch.nn import functional as F

# Named parts of every model. Each forward marks its parts with a profiler scope named
# PART_SCOPE_PREFIX + part, so operator breakdowns can attribute time to parts.
PARTS: tuple[str, ...] = ("sparse", "dense", "wide", "interaction", "attention",
                          "recurrent", "over")
PART_SCOPE_PREFIX = "recstack::"


_NO_SCOPE = contextlib.nullcontext()  # reusable: entering it does nothing
_profiler_enabled = torch.autograd._profiler_enabled
_is_compiling = torch.compiler.is_compiling


def part_scope(part: str) -> contextlib.AbstractContextManager:
    """A ``record_function`` scope for a model part, only while a profiler is recording.

    Outside profiling a scope would cost a few microseconds per part per forward, which at
    batch 1 is a visible share of a recommendation model's latency; the shared null context
    costs a fraction of a microsecond. A compiled model has no part scopes: the profiler
    check would break its graph, and its operators are inductor's kernels anyway.
    """
    if not _is_compiling() and _profiler_enabled():
        return torch.profiler.record_function(PART_SCOPE_PREFIX + part)
    return _NO_SCOPE


@contextlib.contextmanager
def part_scopes_traced(enabled: bool) -> Iterator[None]:
    """Within it, :func:`part_scope` opens its scopes (``enabled``) or not, whether or not a
    profiler records: for tracing a graph with them (the static backend's variant for
    profiling, see :mod:`recstack.static_runtime`) or surely without them. Swaps the
    module's profiler check, so the ordinary path pays nothing for this."""
    global _profiler_enabled
    saved = _profiler_enabled
    _profiler_enabled = _always if enabled else _never
    try:
        yield
    finally:
        _profiler_enabled = saved


def _always() -> bool:
    return True


def _never() -> bool:
    return False


_ACTIVATIONS = {"relu": nn.ReLU, "sigmoid": nn.Sigmoid, "none": nn.Identity}
# What MLP.forward applies after each layer: ReLU in place (the layer's output is its own;
# aten::relu_ is classified like aten::relu), sigmoid as the module would.
_IN_PLACE = {"relu": torch.relu_, "sigmoid": torch.sigmoid, "none": None}


class MLP(nn.Sequential):
    """Fully connected layers ``in_features -> widths[0] -> ... -> widths[-1]``.

    ``hidden`` is the activation after every layer but the last, ``last`` after the last.
    Input ``(..., in_features)``, output ``(..., widths[-1])``.

    The layers are ordinary ``nn.Linear`` and activation modules (their names and
    parameters are what they always were), but ``forward`` calls ``F.linear`` and an in-place
    activation directly: two module calls per layer cost more than a small layer's GEMM at
    batch 1.
    """

    def __init__(self, in_features: int, widths: tuple[int, ...], hidden: str = "relu",
                 last: str = "relu"):
        layers: list[nn.Module] = []
        steps: list[tuple[dict, object]] = []
        fan_in = in_features
        for position, width in enumerate(widths):
            linear = nn.Linear(fan_in, width)
            layers.append(linear)
            activation = last if position == len(widths) - 1 else hidden
            if activation != "none":
                layers.append(_ACTIVATIONS[activation]())
            # The layer's own parameter dict, read at call time: `linear.weight` goes through
            # nn.Module.__getattr__ (about 0.4 us per access), the dict does not, and it
            # stays the layer's (moves and dtype changes update it in place).
            steps.append((linear._parameters, _IN_PLACE[activation]))
            fan_in = width
        super().__init__(*layers)
        self.in_features = in_features
        self.out_features = fan_in
        self._steps = tuple(steps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        linear_fn = F.linear
        for parameters, activate in self._steps:
            x = linear_fn(x, parameters["weight"], parameters["bias"])
            if activate is not None:
                x = activate(x)
        return x


class OutputActivation(nn.Module):
    """Sigmoid for one output (click probability), softmax over several (DIN's 2 classes)."""

    def forward(self, logits: torch.Tensor) -> torch.Tensor:
        if logits.shape[-1] == 1:
            return torch.sigmoid(logits)
        return torch.softmax(logits, dim=-1)


class DotInteraction(nn.Module):
    """DLRM's ``dot``: the dense vector and the pairwise dot products of all feature vectors
    (strict lower triangle), concatenated.

    Input ``(batch, dim)`` dense and ``(batch, tables, dim)`` pooled embeddings; output
    ``(batch, dim + F * (F - 1) / 2)`` with ``F = tables + 1``.
    """

    def __init__(self, num_features: int):
        super().__init__()
        rows, cols = torch.tril_indices(num_features, num_features, offset=-1)
        self.register_buffer("rows", rows, persistent=False)
        self.register_buffer("cols", cols, persistent=False)

    def forward(self, dense: torch.Tensor, embeddings: torch.Tensor) -> torch.Tensor:
        features = torch.cat([dense.unsqueeze(1), embeddings], dim=1)  # (batch, F, dim)
        products = torch.bmm(features, features.transpose(1, 2))       # (batch, F, F)
        pairs = self._buffers  # not nn.Module.__getattr__ (see RecModel)
        return torch.cat([dense, products[:, pairs["rows"], pairs["cols"]]], dim=1)


class CatInteraction(nn.Module):
    """Plain concatenation of ``(batch, dim_dense)`` and ``(batch, tables, dim)``:
    ``(batch, dim_dense + tables * dim)``."""

    def forward(self, dense: torch.Tensor, embeddings: torch.Tensor) -> torch.Tensor:
        return torch.cat([dense, embeddings.flatten(1)], dim=1)


class LocalActivationUnit(nn.Module):
    """DIN's attention unit: scores each behaviour against the query.

    An MLP (sigmoid hidden layers, as in the DIN authors' code) over
    ``[behaviour, query, behaviour - query, behaviour * query]``.
    Input query ``(batch, width)`` and keys ``(batch, steps, width)``; output scores
    ``(batch, steps)``.
    """

    def __init__(self, width: int, hidden: tuple[int, ...]):
        super().__init__()
        self.mlp = MLP(4 * width, hidden + (1,), hidden="sigmoid", last="none")

    def forward(self, query: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
        query = query.unsqueeze(1).expand_as(keys)
        features = torch.cat([keys, query, keys - query, keys * query], dim=-1)
        return self._modules["mlp"].forward(features).squeeze(-1)


class AUGRU(nn.Module):
    """DIEN's GRU with attentional update gate, run over a whole sequence.

    The update gate ``u_t`` is scaled by the attention score ``a_t`` so that behaviours
    unrelated to the candidate barely move the interest state:
    ``h_t = (1 - a_t u_t) * h_{t-1} + a_t u_t * candidate_t``.
    Input ``(batch, steps, input_size)`` and scores ``(batch, steps)``; output the final
    state ``(batch, hidden)``. The input projections of all steps are one matrix product;
    only the recurrence loops over time steps.
    """

    def __init__(self, input_size: int, hidden: int):
        super().__init__()
        self.hidden = hidden
        self.input_projection = nn.Linear(input_size, 3 * hidden)
        self.hidden_projection = nn.Linear(hidden, 3 * hidden)

    def forward(self, inputs: torch.Tensor, attention: torch.Tensor) -> torch.Tensor:
        batch, steps, _ = inputs.shape
        parts = self._modules  # not nn.Module.__getattr__ (see RecModel)
        projected = parts["input_projection"].forward(inputs)          # (batch, steps, 3H)
        state = inputs.new_zeros((batch, self.hidden))
        # The recurrence calls F.linear itself: a module call per step would cost more than
        # the step's small GEMM at small batch.
        hidden_projection = parts["hidden_projection"]._parameters
        weight, bias = hidden_projection["weight"], hidden_projection["bias"]
        for step in range(steps):
            x_reset, x_update, x_new = projected[:, step].chunk(3, dim=1)
            h_reset, h_update, h_new = F.linear(state, weight, bias).chunk(3, dim=1)
            reset = torch.sigmoid(x_reset + h_reset)
            update = torch.sigmoid(x_update + h_update) * attention[:, step:step + 1]
            candidate = torch.tanh(x_new + reset * h_new)
            state = torch.lerp(state, candidate, update)
        return state
