"""NCF / NeuMF (He et al. 2017): a GMF branch and an MLP branch, fused."""

from __future__ import annotations

import torch
from torch import nn

from recstack.batch import Batch
from recstack.models.base import RecModel
from recstack.models.embeddings import pooled_embeddings
from recstack.models.layers import MLP, part_scope
from recstack.precision import FP32, Precision
from recstack.specs import ModelSpec


class NCF(RecModel):
    """Tables in order: GMF user, GMF item, MLP user, MLP item, each ``(batch, dim)``.

    GMF: element-wise product of its user and item vectors ``(batch, dim)``. MLP branch:
    the concatenated MLP-branch vectors ``(batch, 2 dim)`` through ``top`` (ReLU). NeuMF:
    one linear layer over ``[gmf, mlp]`` and a sigmoid -> ``(batch, 1)``.
    """

    def __init__(self, spec: ModelSpec, seed: int, fused: bool = False,
                 precision: Precision = FP32):
        super().__init__(spec, fused, precision)
        dim = spec.embedding_dim
        self.sparse = pooled_embeddings(spec.rows, dim, seed, fused=fused,
                                        precision=precision)
        self.over = MLP(2 * dim, spec.top_mlp)
        self.head = nn.Linear(dim + spec.top_mlp[-1], 1)

    def forward(self, batch: Batch) -> torch.Tensor:
        parts = self._modules  # see RecModel: no nn.Module.__getattr__ per part
        with part_scope("sparse"):
            tables = parts["sparse"].forward(batch)                      # (batch, 4, dim)
        with part_scope("interaction"):
            gmf = tables[:, 0] * tables[:, 1]
            mlp_input = tables[:, 2:].flatten(1)                         # (batch, 2 dim)
        with part_scope("over"):
            mlp = parts["over"].forward(mlp_input)
            return torch.sigmoid(parts["head"].forward(torch.cat([gmf, mlp], dim=1)))
