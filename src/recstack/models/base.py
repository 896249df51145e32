"""The common shape of every model, and ``build_model``."""

from __future__ import annotations

import torch
from torch import nn

from recstack.admission import require_memory
from recstack.batch import Batch
from recstack.layout import TableLayout, table_layout
from recstack.models.layers import MLP, DynamicInt8Linear
from recstack.precision import FP32, Precision
from recstack.specs import ModelSpec

EMBEDDING_PARTS = ("sparse", "wide_sparse", "wide_cross", "behaviours")
"""The parts of a model that hold embedding tables: their precision is the tables' own."""


class RecModel(nn.Module):
    """A recommendation model built from a spec.

    ``forward(batch)`` returns ``(batch, outputs)`` probabilities: one click probability for
    DLRM, NCF and WnD, one per task for MT-WnD, two classes for DIN and DIEN.

    Forwards call their parts' ``forward`` directly, not through ``nn.Module.__call__``: the
    call machinery (hook checks, dispatch in Python) costs about a microsecond or more per
    call, several per forward, which at batch 1 is a visible share of the latency. Module
    hooks on the parts therefore do not fire; the model's own call keeps them. For the same
    reason forwards read their parts from ``self._modules`` (a dict lookup) rather than as
    attributes: ``self.part`` misses the instance dict and goes through
    ``nn.Module.__getattr__``, about 0.65 us per access.
    """

    def __init__(self, spec: ModelSpec, fused: bool = False, precision: Precision = FP32):
        super().__init__()
        self.spec = spec
        self.fused = fused  # whether the embedding tables are in the fused layout
        self.precision = precision
        self.layout: TableLayout = table_layout(spec)
        self._dense_dtype = torch.bfloat16 if precision.dense == "bf16" else None

    def dense_features(self, batch: Batch) -> torch.Tensor:
        """The batch's ``(batch, dense_features)`` in the dense layers' type (a cast under
        bf16 dense layers: part of the forward, as a server receives fp32 features)."""
        dense = batch.dense
        return dense if self._dense_dtype is None else dense.to(self._dense_dtype)

    def forward(self, batch: Batch) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError


def build_model(spec: ModelSpec, seed: int = 0, device: torch.device | str = "cpu",
                dtype: torch.dtype = torch.float32, check_memory: bool = True,
                fused: bool = False, precision: Precision = FP32) -> RecModel:
    """Builds the model of ``spec`` with seeded random weights, in eval mode.

    ``fused`` builds the embedding tables in the fused layout (one weight and one lookup for
    all pooled tables, one for all behaviour tables; see :mod:`recstack.models.embeddings`),
    directly: no per-table copy exists at any time. The values are the eager layout's.

    The memory check runs before any allocation and raises RecstackError with the
    ``--row-scale`` that would fit. Weights are built on the CPU, then moved to ``device`` and
    ``dtype`` when those differ (a dtype change copies the tables once).

    ``precision`` (:mod:`recstack.precision`) builds the tables directly in their stored
    precision (no fp32 copy of them exists at any time) and then converts the dense layers:
    bf16 weights, or dynamic int8 fully connected layers.
    """
    if check_memory:
        require_memory(spec, precision=precision)
    from recstack.models.dien import DIEN
    from recstack.models.din import DIN
    from recstack.models.dlrm import DLRM
    from recstack.models.ncf import NCF
    from recstack.models.wnd import MultiTaskWideAndDeep, WideAndDeep

    builders = {"dlrm": DLRM, "ncf": NCF, "wnd": WideAndDeep, "mtwnd": MultiTaskWideAndDeep,
                "din": DIN, "dien": DIEN}
    # Dense layers take torch's default initialisation from a seeded, private RNG state;
    # embedding tables are seeded separately (see recstack.models.embeddings).
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = builders[spec.model_type](spec, seed, fused, precision)
    model.eval()
    _convert_dense(model, precision)
    if torch.device(device) != torch.device("cpu") or dtype != torch.float32:
        model = model.to(device=device, dtype=dtype)
    return model


def _convert_dense(model: RecModel, precision: Precision) -> None:
    """Puts every part but the embedding tables in ``precision.dense``, in place."""
    if precision.dense == "bf16":
        for name, part in model.named_children():
            if name not in EMBEDDING_PARTS:
                part.to(torch.bfloat16)
    elif precision.dense == "int8":
        for module in model.modules():
            if isinstance(module, MLP):
                module.quantize_int8()
        for parent in list(model.modules()):
            for name, child in list(parent._modules.items()):
                if isinstance(child, nn.Linear):
                    parent._modules[name] = DynamicInt8Linear(child)
