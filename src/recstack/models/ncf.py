"""NCF / NeuMF (He et al. 2017): a GMF branch and an MLP branch, fused."""

from __future__ import annotations

import torch
from torch import nn

from recstack.batch import Batch
from recstack.models.base import RecModel
from recstack.models.embeddings import PooledEmbeddings
from recstack.models.layers import MLP, part_scope
from recstack.specs import ModelSpec


class NCF(RecModel):
    """Tables in order: GMF user, GMF item, MLP user, MLP item, each ``(batch, dim)``.

    GMF: element-wise product of its user and item vectors ``(batch, dim)``. MLP branch:
    the concatenated MLP-branch vectors ``(batch, 2 dim)`` through ``top`` (ReLU). NeuMF:
    one linear layer over ``[gmf, mlp]`` and a sigmoid -> ``(batch, 1)``.
    """

    def __init__(self, spec: ModelSpec, seed: int):
        super().__init__(spec)
        dim = spec.embedding_dim
        self.sparse = PooledEmbeddings(spec.rows, dim, seed)
        self.over = MLP(2 * dim, spec.top_mlp)
        self.head = nn.Linear(dim + spec.top_mlp[-1], 1)

    def forward(self, batch: Batch) -> torch.Tensor:
        with part_scope("sparse"):
            gmf_user, gmf_item, mlp_user, mlp_item = self.sparse(batch.bag_indices,
                                                                 batch.bag_offsets)
        with part_scope("interaction"):
            gmf = gmf_user * gmf_item
            mlp_input = torch.cat([mlp_user, mlp_item], dim=1)
        with part_scope("over"):
            mlp = self.over(mlp_input)
            return torch.sigmoid(self.head(torch.cat([gmf, mlp], dim=1)))
