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


class Dice(nn.Module):
    """DIN's data-adaptive activation (Zhou et al. 2018): ``p * x + (1 - p) * alpha * x`` with
    ``p = sigmoid((x - mean) / sqrt(var + eps))``, per channel. At inference the mean and the
    variance are running statistics (buffers; a trained model's would replace the initial 0
    and 1) and ``alpha`` a learned parameter (initially 0, as the authors' code).
    Input and output ``(..., width)``."""

    def __init__(self, width: int, eps: float = 1e-9):
        super().__init__()
        self.eps = eps
        self.alpha = nn.Parameter(torch.zeros(width))
        self.register_buffer("running_mean", torch.zeros(width))
        self.register_buffer("running_var", torch.ones(width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = torch.sigmoid((x - self.running_mean) * torch.rsqrt(self.running_var + self.eps))
        return x * (p + (1 - p) * self.alpha)


_ACTIVATIONS = {"relu": nn.ReLU, "sigmoid": nn.Sigmoid, "none": nn.Identity}
_LEARNED = {"prelu": nn.PReLU, "dice": Dice}  # PReLU: one slope per channel, initially 0.25
"""Activations with parameters of their own, one module per layer (the others are
stateless: one in-place function serves every layer)."""
# What MLP.forward applies after each layer: ReLU in place (the layer's output is its own;
# aten::relu_ is classified like aten::relu), sigmoid as the module would.
_IN_PLACE = {"relu": torch.relu_, "sigmoid": torch.sigmoid, "none": None}


@contextlib.contextmanager
def _quantized_dtypes() -> Iterator[None]:
    """Silences torch's notice that quantized tensor dtypes (qint8) are deprecated: its
    dynamic int8 linear kernel still takes its weight packed from one (docs/design.md,
    "Precision", says what would replace it when torch removes them)."""
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*quantized tensor creation functions.*")
        yield


class DynamicInt8Linear(nn.Module):
    """A fully connected layer under dynamic int8 quantization, as torch's dynamic
    quantization makes it: weights int8 per output channel (symmetric), the float32 bias
    kept, activations quantized per call (``quantized::linear_dynamic`` with the reduced
    range FBGEMM's x86 kernels use). Input and output float32 ``(..., in) -> (..., out)``.

    The int8 values, the channels' scales and the bias are buffers; the packed weight the
    kernel reads is made from them. The packed weight is an opaque FBGEMM object that does
    not cross processes: a serving engine's process receives the buffers (shared) and
    packs them again."""

    def __init__(self, linear: nn.Linear):
        super().__init__()
        weight = linear.weight.detach().float()
        scales = (weight.abs().amax(dim=1) / 127.5).clamp(min=1e-12).double()
        with _quantized_dtypes():
            quantized = torch.quantize_per_channel(
                weight, scales, torch.zeros(weight.shape[0], dtype=torch.long), 0, torch.qint8)
        self.register_buffer("weight_int8", quantized.int_repr())
        self.register_buffer("scales", scales)
        self.register_buffer("bias", None if linear.bias is None
                             else linear.bias.detach().float().clone())
        self.in_features = linear.in_features
        self.out_features = linear.out_features
        self._packed = self._pack()

    def _pack(self) -> object:
        with _quantized_dtypes():
            weight = torch._make_per_channel_quantized_tensor(
                self.weight_int8, self.scales, torch.zeros_like(self.scales, dtype=torch.long),
                0)
        return torch.ops.quantized.linear_prepack(weight, self.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.ops.quantized.linear_dynamic(x, self._packed, True)

    def __getstate__(self) -> dict:
        return {key: value for key, value in self.__dict__.items() if key != "_packed"}

    def __setstate__(self, state: dict) -> None:
        super().__setstate__(state)
        self._packed = self._pack()


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
            if activation in _LEARNED:
                module = _LEARNED[activation](width)
                layers.append(module)
                activate = module.forward
            else:
                if activation != "none":
                    layers.append(_ACTIVATIONS[activation]())
                activate = _IN_PLACE[activation]
            # The layer's own parameter dict, read at call time: `linear.weight` goes through
            # nn.Module.__getattr__ (about 0.4 us per access), the dict does not, and it
            # stays the layer's (moves and dtype changes update it in place).
            steps.append((linear._parameters, activate))
            fan_in = width
        super().__init__(*layers)
        self.in_features = in_features
        self.out_features = fan_in
        self._steps = tuple(steps)
        self._int8_steps: tuple[tuple[DynamicInt8Linear, object], ...] = ()

    def quantize_int8(self) -> None:
        """Replaces every layer by its :class:`DynamicInt8Linear` form, in place."""
        names = [name for name, module in self._modules.items()
                 if isinstance(module, nn.Linear)]
        steps = []
        for name, (_, activate) in zip(names, self._steps):
            layer = DynamicInt8Linear(self._modules[name])
            self._modules[name] = layer
            steps.append((layer, activate))
        self._int8_steps = tuple(steps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._int8_steps:
            for layer, activate in self._int8_steps:
                x = layer.forward(x)
                if activate is not None:
                    x = activate(x)
            return x
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
        hidden_projection = parts["hidden_projection"]
        quantized = None if isinstance(hidden_projection, nn.Linear) \
            else hidden_projection.forward  # dynamic int8
        weight = hidden_projection._parameters.get("weight")
        bias = hidden_projection._parameters.get("bias")
        for step in range(steps):
            x_reset, x_update, x_new = projected[:, step].chunk(3, dim=1)
            hidden = F.linear(state, weight, bias) if quantized is None else quantized(state)
            h_reset, h_update, h_new = hidden.chunk(3, dim=1)
            reset = torch.sigmoid(x_reset + h_reset)
            update = torch.sigmoid(x_update + h_update) * attention[:, step:step + 1]
            candidate = torch.tanh(x_new + reset * h_new)
            state = torch.lerp(state, candidate, update)
        return state
