"""DIEN, the Deep Interest Evolution Network (Zhou et al. 2019)."""

from __future__ import annotations

import torch
from torch import nn

from recstack.batch import Batch
from recstack.footprint import over_input_width
from recstack.models.behaviour import BehaviourModel
from recstack.models.layers import (AUGRU, MLP, LocalActivationUnit, OutputActivation,
                                    part_scope)
from recstack.precision import FP32, Precision
from recstack.specs import ModelSpec


class DIEN(BehaviourModel):
    """Interest extractor: a GRU over the behaviours ``(batch, steps, hidden)``. Interest
    evolution: attention of each state against the candidate (projected to ``hidden``),
    softmax over steps, then an AUGRU whose final state ``(batch, hidden)`` is the evolved
    interest. The MLP (ReLU, or the spec's ``activation``) reads ``[user, interest,
    candidate, context]`` ``(batch, 3 dim + hidden)``; output ``(batch, top[-1])``. The
    auxiliary loss of the paper is a training-time term and does not exist at inference."""

    def __init__(self, spec: ModelSpec, seed: int, fused: bool = False,
                 precision: Precision = FP32):
        super().__init__(spec, seed, fused, precision)
        hidden = int(spec.gru_hidden_size)  # present for dien: spec validation requires it
        self.extractor = nn.GRU(spec.embedding_dim, hidden, batch_first=True)
        self.query = nn.Linear(spec.embedding_dim, hidden)
        self.attention = LocalActivationUnit(hidden, spec.attention_mlp)
        self.evolution = AUGRU(hidden, hidden)
        self.over = MLP(over_input_width(spec), spec.top_mlp, hidden=spec.activation or "relu",
                        last="none")
        self.output = OutputActivation()

    def forward(self, batch: Batch) -> torch.Tensor:
        user, candidate, context, behaviours = self.embed(batch)
        parts = self._modules  # see RecModel: no nn.Module.__getattr__ per part
        with part_scope("recurrent"):
            states, _ = parts["extractor"].forward(behaviours)       # (batch, steps, hidden)
        with part_scope("attention"):
            query = parts["query"].forward(candidate)
            scores = parts["attention"].forward(query, states)       # (batch, steps)
            scores = torch.softmax(scores, dim=1)
        with part_scope("recurrent"):
            interest = parts["evolution"].forward(states, scores)    # (batch, hidden)
        with part_scope("interaction"):
            features = torch.cat([user, interest, candidate, context], dim=1)
        with part_scope("over"):
            return parts["output"].forward(parts["over"].forward(features))
