"""DIN, the Deep Interest Network (Zhou et al. 2018)."""

from __future__ import annotations

import torch

from recstack.batch import Batch
from recstack.footprint import over_input_width
from recstack.models.behaviour import BehaviourModel
from recstack.models.layers import MLP, LocalActivationUnit, OutputActivation, part_scope
from recstack.precision import FP32, Precision
from recstack.specs import ModelSpec


class DIN(BehaviourModel):
    """Each behaviour is weighted by a local activation unit against the candidate ad, and
    the behaviours are sum-pooled with those weights (no softmax, as in the paper) into the
    user's interest ``(batch, dim)``. The MLP (ReLU, or the spec's ``activation``) reads
    ``[user, interest, candidate, context]`` ``(batch, 4 dim)``; output ``(batch, top[-1])``
    (softmax over the 2 classes of the canonical config)."""

    def __init__(self, spec: ModelSpec, seed: int, fused: bool = False,
                 precision: Precision = FP32):
        super().__init__(spec, seed, fused, precision)
        self.attention = LocalActivationUnit(spec.embedding_dim, spec.attention_mlp)
        self.over = MLP(over_input_width(spec), spec.top_mlp, hidden=spec.activation or "relu",
                        last="none")
        self.output = OutputActivation()

    def forward(self, batch: Batch) -> torch.Tensor:
        user, candidate, context, behaviours = self.embed(batch)
        parts = self._modules  # see RecModel: no nn.Module.__getattr__ per part
        with part_scope("attention"):
            weights = parts["attention"].forward(candidate, behaviours)      # (batch, steps)
            interest = torch.bmm(weights.unsqueeze(1), behaviours).squeeze(1)  # (batch, dim)
        with part_scope("interaction"):
            features = torch.cat([user, interest, candidate, context], dim=1)
        with part_scope("over"):
            return parts["output"].forward(parts["over"].forward(features))
