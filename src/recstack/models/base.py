"""The common shape of every model, and ``build_model``."""

from __future__ import annotations

import torch
from torch import nn

from recstack.admission import require_memory
from recstack.batch import Batch
from recstack.layout import TableLayout, table_layout
from recstack.specs import ModelSpec


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

    def __init__(self, spec: ModelSpec, fused: bool = False):
        super().__init__()
        self.spec = spec
        self.fused = fused  # whether the embedding tables are in the fused layout
        self.layout: TableLayout = table_layout(spec)

    def forward(self, batch: Batch) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError


def build_model(spec: ModelSpec, seed: int = 0, device: torch.device | str = "cpu",
                dtype: torch.dtype = torch.float32, check_memory: bool = True,
                fused: bool = False) -> RecModel:
    """Builds the model of ``spec`` with seeded random weights, in eval mode.

    ``fused`` builds the embedding tables in the fused layout (one weight and one lookup for
    all pooled tables, one for all behaviour tables; see :mod:`recstack.models.embeddings`),
    directly: no per-table copy exists at any time. The values are the eager layout's.

    The memory check runs before any allocation and raises RecstackError with the
    ``--row-scale`` that would fit. Weights are built on the CPU, then moved to ``device`` and
    ``dtype`` when those differ (a dtype change copies the tables once).
    """
    if check_memory:
        require_memory(spec)
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
        model = builders[spec.model_type](spec, seed, fused)
    model.eval()
    if torch.device(device) != torch.device("cpu") or dtype != torch.float32:
        model = model.to(device=device, dtype=dtype)
    return model
